// Package examples holds example jobs: Go programs built for
// GOOS=wasip1 GOARCH=wasm by `make examples`, their job specs, and provider
// configurations. It holds no library code.
package examples
