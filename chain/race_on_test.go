//go:build race

package chain

// raceBuild is true under -race. The tests at the scale of 65,536 records
// are single-goroutine and skip there; `make test` runs them without it.
const raceBuild = true
