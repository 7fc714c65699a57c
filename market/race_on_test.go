//go:build race

package market

// raceEnabled is true when tests run under the race detector, which slows
// the single-goroutine randomized tests about twentyfold; they run fewer
// rounds then (the full count runs in the plain `go test`).
const raceEnabled = true
