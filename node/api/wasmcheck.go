package api

import (
	"github.com/bourse-net/bourse/worker/wasm/wasmfile"
)

// WASIModule is the only import module a provider's WASM executor offers.
const WASIModule = wasmfile.WASIModule

// CheckWasmModule checks a WebAssembly module's structure and declarations
// without compiling it (wasmfile.Check): the header, every section's id,
// order and bounds, the imports (only WASI preview 1 functions), the
// exports (a `_start` function: a WASI command), and the resources the
// module declares: one 32-bit unshared memory, tables of at most
// wasmfile.DefaultTableEntries entries in all (each costs the provider 8
// bytes outside the job's memory limit). It costs microseconds where
// compiling costs most of a second, and it turns the usual mistakes (a
// truncated or wrong file, a module built for the browser or for another
// host, a library without an entry point) and modules built to exhaust a
// provider into an error at submit time instead of a failed run. The
// provider checks again against the job's memory limit before running
// (a hand-built bid skips this check); function bodies are validated by
// its compiler.
func CheckWasmModule(b []byte) error {
	return wasmfile.Check(b, wasmfile.Limits{})
}
