// Package exec is the worker.Executor that runs a job's payload as a
// native process. It is not a sandbox: it runs nothing unless the provider
// sets Config.Enabled, and it needs the daemon to run as root (to give
// each job a uid of its own); otherwise Available reports
// worker.ErrUnavailable.
//
// A job's payload is a static executable. It is written into a private
// directory under Config.WorkDir (removed afterwards) and started through
// a trampoline (the daemon's own binary, see trampoline.go) which, before
// the payload's first instruction:
//
//   - binds the output directory at <private dir>/out in a mount
//     namespace of the job's own (BOURSE_OUTPUT names that path), so the
//     job can reach it without being able to search its parents;
//   - sets the rlimits: RLIMIT_DATA = Limits.MemoryMiB, RLIMIT_CPU = the
//     timeout's seconds (scaled by cores bought above one), RLIMIT_FSIZE =
//     Limits.DiskMiB, RLIMIT_NOFILE = Config.MaxOpenFiles, RLIMIT_NPROC =
//     Config.MaxProcesses (processes and threads of the job's uid), no
//     core dumps;
//   - drops to a uid and gid of the job's own (Config.UIDBase +
//     slot, no supplementary groups), used by no other process: the job
//     cannot read the daemon's /proc/<pid>/environ (which holds
//     BOURSE_PASSPHRASE), signal it or another job, or read files private
//     to the daemon's user.
//
// The job's environment is only Job.Env, PATH, HOME and TMPDIR (its
// private working directory) and BOURSE_OUTPUT, never the daemon's. It has
// its own process group, killed (SIGKILL) on timeout, Cancel or Close;
// when the job ends every process running under its uid is killed too,
// so a grandchild that left the group (setsid) does not outlive it. The
// daemon's death kills the job (Pdeathsig).
//
// A process that exits non-zero after writing "out of memory" or "cannot
// allocate memory" to stderr is reported StateOOM; SIGXCPU is
// StateTimedOut. A runtime that crashes at the limit without saying so is
// reported StateFailed: the kernel leaves no trace of a refused mapping,
// and peak RSS is no proxy (a Go program that faulted at a 48 MiB data
// limit had touched 16 MiB).
//
// What exec still does not protect: the job shares the host's kernel,
// network (it can dial anything the host can), file system (whatever is
// world-readable, /tmp included) and CPU (no throttling below the cores it
// bought; RLIMIT_CPU only ends it); RLIMIT_DATA bounds its heap, not its
// page cache or kernel memory, and there is no cgroup: memory is per
// process, so MaxProcesses processes may each use Limits.MemoryMiB. A
// kernel exploit is a host compromise. Use the wasm or docker backend for
// untrusted code.
package exec
