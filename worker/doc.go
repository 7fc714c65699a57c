// Package worker runs matched jobs in a sandbox. It defines the Executor
// contract that every backend (worker/wasm, worker/docker, worker/exec)
// implements, tracks the capacity a provider sold, packs results
// deterministically and keeps them in a content-addressed store. Payloads
// are fetched through an interface the node supplies.
//
// May import: codec and the standard library; backends import their engine.
package worker
