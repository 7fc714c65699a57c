// Package wasm is the default worker.Executor: it runs WASI preview 1
// modules (for example Go programs built with GOOS=wasip1 GOARCH=wasm) on
// wazero, with no cgo, each job in a job process of its own: never in the
// daemon's address space.
//
// A job process is the daemon's own binary started again (/proc/self/exe,
// or Config.Binary) with a clean environment and BOURSE_WASM_RUNNER=1: any
// binary that links this package serves jobs from its init instead of
// running main (see runnerMain). It receives jobs on stdin and reports
// the guest's stdout and stderr and the outcome in frames on its stdout.
// It compiles the module itself (the daemon never compiles untrusted
// code) and keeps it: a process that finished a job cleanly waits, idle,
// for the next job of the same module (Config.KeepCompiled idle processes
// at most, least recently used killed first). A job that is stopped
// (timeout, Cancel, log cap) is stopped by killing its process, so guests
// are compiled without wazero's per-loop termination checks.
//
// Before anything starts, the module's declarations are checked against
// the job (wasmfile.Check): one 32-bit memory whose initial size fits
// Limits.MemoryMiB, tables of at most MemoryMiB/8 entries (each costs 8
// bytes of host memory outside linear memory). A table without a maximum
// gets its minimum as maximum (wasmfile.Prepare), so table.grow cannot
// grow it. Failing this ends the job StateOOM ("module refused").
//
// While the job runs, its process' RLIMIT_DATA is what it mapped when the
// job began, plus the job's memory, plus Config.ProcessSlackMiB (64 MiB):
// linear memory is an mmap reservation made writable as the guest grows
// it (never copied), and everything else the guest makes the host
// allocate (wazero's call stack, which deep recursion grows to 400 MB,
// tables) comes out of the slack. Past it the Go runtime fails its
// allocation and the process dies with "out of memory": the job ends
// StateOOM and the daemon, and every other job, are untouched. Its
// threads (debug.SetMaxThreads 256) and descriptors (RLIMIT_NOFILE 256)
// are bounded too. The daemon's death kills it (Pdeathsig).
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
//   - wall time up to Job.Limits.Timeout: the guest's process is killed,
//     even in a loop that never calls the host, and the job ends
//     StateTimedOut with its partial logs.
//   - a fake clock (fixed wall time, a monotonic clock that advances per
//     read, sleeps that return at once) unless Job.RealClock, and a
//     random_get stream (ChaCha8 keyed by Job.Seed) unless Job.RealRandom:
//     the same module with the same inputs produces the same output, so
//     results from different providers can be compared by hash.
//
// Compiled modules are kept by idle job processes (Config.KeepCompiled)
// and on disk in wazero's compilation cache (Config.CacheDir; without one,
// a temporary directory removed by Close), so a repeated module starts
// without compiling: on this project's reference machine a 2.6 MB Go
// module compiles in ~750 ms cold, loads in ~30 ms from the file cache (a
// new job process) and instantiates and runs `hello` in ~6 ms in an idle
// process holding it (see the Benchmark functions).
//
//	e, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(home, "cache", "wasm")})
//	err = e.Start(ctx, job, outDir)
//	exit, err := e.Wait(ctx, job.ID)
package wasm
