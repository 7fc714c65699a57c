// Package examples holds example jobs: Go programs built for
// GOOS=wasip1 GOARCH=wasm by `make examples`, their job specs, and provider
// configurations. It holds no library code.
//
// Every example is examples/<name>/main.go (package main) with a job spec
// examples/<name>/job.yaml in the CLI's job-spec format; the payload path
// in a spec is relative to the spec file. Build one by hand with
//
//	GOOS=wasip1 GOARCH=wasm go build -o examples/hello/hello.wasm ./examples/hello
//
// and submit it with `bourse job submit examples/hello/job.yaml --wait`.
//
//   - hello: prints "$GREETING, <args>!" (GREETING defaults to "hello").
//   - primes: counts the primes below its argument by trial division;
//     CPU-bound, the argument sets the work. WASM jobs run with a fake
//     clock and seeded randomness, so two providers running it produce the
//     same result hash: what verification by agreement (replicas: 2+, not
//     supported yet; the spec asks for one) will compare.
//   - wordcount: counts words of its arguments or, without arguments, of
//     $WORDCOUNT_INPUT; writes counts.txt into the output directory.
//   - docker-hello: the same kind of program packaged as a FROM scratch
//     image (see its Dockerfile) for the docker executor.
//   - svc-hello: a service (issue 19): answers every HTTP request routed
//     to it with "$GREETING, <path>!". Services serve framed requests in
//     a loop with worker/svcwire.Serve.
//   - svc-primes: a CPU-bound service: GET /?n=N counts the primes below N.
//
// Inside a job, $BOURSE_OUTPUT names the output directory (/out for wasm
// and docker); what a job leaves there is packed into its result.
package examples
