//go:build !race

package consensus

const raceBuild = false
