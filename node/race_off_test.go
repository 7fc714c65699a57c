//go:build !race

package node

// raceBuild is true under -race: the dashboard's browser test skips there
// and `make test` runs it without.
const raceBuild = false
