//go:build !race

package driver

const raceBuild = false
