// Package wasm is the default worker.Executor: it runs WASI preview 1
// modules (for example Go programs built with GOOS=wasip1 GOARCH=wasm) on
// wazero, in-process, with no cgo.
//
// What a job gets:
//
//   - args: "job" then Job.Args; env: Job.Env plus BOURSE_OUTPUT=/out;
//     empty stdin; stdout and stderr captured up to Config.LogCap each
//     (more ends the job failed).
//   - a file system holding only its output directory, mounted at /out
//     and metered: a write or truncate that would take its files past
//     Job.Limits.DiskMiB, or a create past Config.MaxOutputFiles
//     creations, fails with EIO (wazero's errno set has no ENOSPC) and the
//     job ends failed with worker.ErrOutputLimit, whatever the guest did
//     next. Symbolic and hard links are refused (EPERM): wazero follows a
//     symlink out of the mount. See quotaFS;
//   - no sockets (WASI preview 1 has none unless the host passes them, and
//     this one does not).
//   - memory up to Job.Limits.MemoryMiB: growth past it is refused and the
//     job ends StateOOM.
//   - wall time up to Job.Limits.Timeout: the guest is stopped, even in a
//     loop that never calls the host (wazero's close-on-context-done), and
//     ends StateTimedOut with its partial logs.
//   - a fake clock (fixed wall time, a monotonic clock that advances per
//     read, sleeps that return at once) unless Job.RealClock, and a
//     random_get stream (ChaCha8 keyed by Job.Seed) unless Job.RealRandom:
//     the same module with the same inputs produces the same output, so
//     results from different providers can be compared by hash.
//
// Compiled modules are kept in memory by module hash (Config.KeepCompiled,
// least recently used evicted) and on disk in wazero's compilation cache
// (Config.CacheDir), so a repeated module starts without compiling: on this
// project's reference machine a 2.6 MB Go module compiles in ~750 ms cold,
// loads in ~30 ms from the file cache and instantiates and runs `hello` in
// a few ms from memory (see the Benchmark functions).
//
//	e, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(home, "cache", "wasm")})
//	err = e.Start(ctx, job, outDir)
//	exit, err := e.Wait(ctx, job.ID)
package wasm
