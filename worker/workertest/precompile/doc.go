// Package precompile is a tool disguised as a test binary: built with
// `go test -c` (without the race detector) and run with
// BOURSE_PRECOMPILE_CACHE and BOURSE_PRECOMPILE_FILES set, it fills a
// wazero compilation cache with the given modules and exits. The worker
// test suites use it so tests built with -race do not spend tens of
// seconds compiling guests with an instrumented compiler. It is a test
// binary so that wazero sees the same build information (and so picks the
// same cache subdirectory) as the test binaries that read the cache; it
// compiles with the wasm executor's runtime configuration (close on
// context done), which is part of wazero's cache key.
package precompile
