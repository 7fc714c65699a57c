// Package worker runs matched jobs in a sandbox. It defines the Executor
// contract that every backend (worker/wasm, worker/docker, worker/exec)
// implements, tracks the capacity a provider sold, packs results
// deterministically and keeps them in a content-addressed store. Payloads
// are fetched through an interface the node supplies.
//
// May import: codec and the standard library; backends import their engine.
//
// # What the node calls
//
//	store, _ := worker.OpenStore(filepath.Join(home, "results"), worker.StoreConfig{MaxBytes: 10 << 30})
//	wasmEx, _ := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(home, "cache", "wasm")})
//	dockerEx, _ := docker.New(docker.Config{})          // Available() says if a daemon answers
//	execEx, _ := exec.New(exec.Config{Enabled: true}) // only if the operator lists "exec" in [provider] executors
//	rt, _ := worker.NewRuntime(worker.Config{Capacity: sold}, store, p2pFetcher, wasmEx, dockerEx, execEx)
//	defer rt.Close(ctx)                                 // the Runtime owns the executors
//
//	err := rt.Start(ctx, &worker.Job{ID: matchID, Executor: worker.KindWASM, Payload: module,
//		PayloadHash: bid.PayloadHash, Args: args, Env: env, Limits: limits, Seed: seed})
//	res, err := rt.Wait(ctx, matchID)    // *Result: State, ExitCode, Reason, Hash, Size, Usage, logs
//	// commit res.Hash on chain; the p2p blob server serves store.Open(res.Hash)
//	load := rt.Load()                    // reserved vs total, for offers
//	kinds := rt.Executors(ctx)           // executors that are available, for offers
//
// Runtime.Start refuses, with an error and nothing reserved: an invalid
// job, an executor that is not enabled or not available (ErrUnavailable), a
// job that does not fit in the free capacity (ErrInsufficientCapacity, the
// message says which dimension is short), a duplicate id (ErrDuplicateJob),
// a payload over Config.MaxPayload (ErrPayloadTooLarge) or whose bytes do
// not hash to PayloadHash (ErrPayloadHash). A job given PayloadHash,
// PayloadSize and PayloadFrom but no Payload is fetched through the
// PayloadFetcher first (size-capped, hash verified; see FetchPayload).
//
// Once started, a job always ends with a Result: StateSucceeded,
// StateFailed (non-zero exit, trap, invalid payload, log or output over its
// cap), StateTimedOut (Limits.Timeout, counted from Start, and counted
// again from the end of the backend's preparation: a cold compile or an
// image load may take up to the timeout and is then neither billed nor
// taken from the job's time; see Run.Begin), StateOOM
// (Limits.MemoryMiB) or StateCancelled (Cancel or Close). Result.Err()
// returns a *JobError that matches ErrTimeout (and
// context.DeadlineExceeded), ErrOutOfMemory, ErrCancelled (and
// context.Canceled) or ErrJobFailed. Usage is billed on what was reserved:
// CPUMillis = wall ms × reserved millicores / 1000, MemoryMiBSeconds =
// reserved MiB × wall seconds (rounded up), WallMillis.
//
// # Results
//
// Pack writes a tar with the entries exit_code, stdout, stderr and out/…
// (the output directory), sorted by name, timestamps at the Unix epoch,
// owners 0:0 without names and modes normalised to 0644/0755: the same run
// gives the same bytes, and Result.Hash is their sha256. A WASM job runs
// with a fake clock and a random source seeded from Job.Seed unless it asks
// for real ones, so two providers running it produce the same hash. The
// output directory is bounded by Limits.DiskMiB (no disk bought: no output
// files) and Config.MaxOutputFiles; over the bound the job fails and its
// result holds only exit_code, stdout and stderr. The bound holds while the
// job runs, too, so a job cannot fill the provider's disk: the Runtime
// measures the directory every Config.OutputPoll and stops a job past it
// (a docker or exec job can overshoot by what it writes in one interval),
// and the WASM backend meters the guest's writes and refuses the one that
// would pass it.
//
// Store keeps blobs as files named by their hex sha256, written atomically,
// evicting the oldest when over StoreConfig.MaxBytes or MaxCount. Open
// (for the blob protocol), Put, Write, Has, Get, Delete; it survives
// restarts.
//
// # Writing a backend
//
// A backend implements Executor; the Runs type gives it the shared
// bookkeeping (Wait, Cancel, Logs, Close, timeouts, capped logs that stop a
// flooding job) so the backend only writes the body of a run: its Start
// checks the job and calls Runs.Go, and it embeds Runs.Control for Wait,
// Cancel and Logs. Every backend runs the contract suite in
// worker/workertest.
//
// See RATIONALE.md for the decisions that are not obvious.
package worker
