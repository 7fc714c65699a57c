//go:build race

package driver

// raceBuild is true under -race, where building and checking blocks is
// many times slower: the byzantine simulations run one seed and the test
// of 256 maximal bids skips (make test runs it without -race).
const raceBuild = true
