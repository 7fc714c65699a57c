// Package api is the contract of the daemon's HTTP API: the JSON request
// and response types, the job spec, the error model and a typed Client.
// The CLI imports only this package to talk to a daemon; node/httpapi
// serves it.
//
// # Types
//
// JSON field names are stable snake_case: Status has "height", Block has
// "hash" and "height", Job has "id" and "state". Amounts are JSON integers
// in base units; hashes and ids are lowercase hex. The OpenAPI document
// (openapi.yaml in this directory, embedded as OpenAPI) is the reference.
//
// # Errors
//
// Every error response is {"error": {"code": "...", "message": "..."}}. A
// node returns the sentinels ErrNotFound, ErrBadRequest (wrap a reason with
// BadRequest), ErrConflict and ErrUnavailable; they become 404, 400, 409 and
// 503. The Client decodes error responses into *Error, which matches the
// same sentinels with errors.Is. A daemon that cannot be reached at all
// gives *UnreachableError, whose message says how to start it.
//
// # Job specs
//
// ParseJobSpec reads YAML or JSON:
//
//	name: hello
//	executor: wasm            # wasm | docker | exec (default wasm)
//	payload: hello.wasm       # relative to the spec (wasm, exec; docker: a `docker save` tarball)
//	# image: bourse-hello:latest  (docker; with a tarball payload, the image ID sha256:...)
//	args: ["world"]           # args and env travel in the job's manifest, not in the bid
//	env: {GREETING: "hello"}
//	resources: {cpu: 250, memory: 64, disk: 16, gpus: 0}  # millicores, MiB, MiB
//	max_price: 2000000        # required, base units
//	timeout: 30s              # run timeout (default 1m)
//	deadline: 30s             # match-by deadline (default 1m)
//	placement: cheapest       # cheapest | least-loaded | nearest | balanced
//	constraints: {region: "", labels: {}, executors: []}
//	replicas: 1               # k distinct providers; disagreements: wasm to referees, docker/exec by majority (accept_majority: true)
//	visibility: private       # private (default): payload and result only for the matched provider and the client; public: any peer
//
// Unknown fields, negative or absurd numbers, bad durations, an unknown
// executor and a missing payload are *SpecError values naming the field;
// they match ErrBadRequest. Specs built in code are checked with
// WithDefaults().Validate(). CheckPayload does the cheap payload checks
// (a wasm payload must be a well-formed WASI command: CheckWasmModule walks
// its sections, imports and exports in microseconds, without compiling).
//
// # Client
//
//	c, err := api.NewClient("127.0.0.1:7700", token, nil)
//	st, err := c.Status(ctx)
//	job, err := c.SubmitJob(ctx, spec, payloadFile) // multipart upload
//	rc, info, err := c.JobResult(ctx, job.ID)      // verified while read
//	ev, err := c.Events(ctx)                       // server-sent events
//
// One method per route; see the method docs for the paths.
package api
