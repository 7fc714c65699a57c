//go:build !bourse_testhooks

package node

// lieMode is the test hook of testhooks_on.go: a release build never lies.
func lieMode(string) string { return "" }
