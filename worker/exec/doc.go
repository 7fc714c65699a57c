// Package exec is the worker.Executor that runs a job's payload as a plain
// process. It is not a sandbox: it runs nothing unless the provider sets
// Config.Enabled.
//
// A job's payload is a static executable. It is written into a private
// directory (removed afterwards) and started with:
//
//   - its own process group, killed as a whole (SIGKILL) on timeout,
//     Cancel or Close, and once more after it exits, so no child outlives
//     the job; the parent's death kills it too (Pdeathsig);
//   - a private working directory as cwd, HOME and TMPDIR, an environment
//     of only Job.Env, PATH and BOURSE_OUTPUT (the host path of the output
//     directory);
//   - rlimits: RLIMIT_DATA = Limits.MemoryMiB, RLIMIT_CPU = the timeout's
//     seconds (scaled by cores bought above one), RLIMIT_FSIZE =
//     Limits.DiskMiB, RLIMIT_NOFILE = Config.MaxOpenFiles, no core dumps.
//     They are applied with prlimit right after the process starts.
//
// A process that exits non-zero after writing "out of memory" or "cannot
// allocate memory" to stderr is reported StateOOM; SIGXCPU is
// StateTimedOut. A runtime that crashes at the limit without saying so is
// reported StateFailed: the kernel leaves no trace of a refused mapping,
// and peak RSS is no proxy (a Go program that faulted at a 48 MiB data
// limit had touched 16 MiB).
package exec
