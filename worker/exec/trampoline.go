package exec

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A job's process starts as the daemon's own binary (/proc/self/exe) with
// trampolineEnv set: this init, still root, sets the job's rlimits on
// itself, drops to the job's uid and gid with no supplementary groups and
// executes the payload. So the limits hold from the payload's first
// instruction, and no privilege over the job's process is needed to set
// them (prlimit on another uid needs CAP_SYS_RESOURCE).
const trampolineEnv = "BOURSE_EXEC_TRAMPOLINE"

func init() {
	if v, ok := os.LookupEnv(trampolineEnv); ok {
		if err := trampoline(v); err != nil {
			fmt.Fprintln(os.Stderr, "bourse exec: start job:", err)
			os.Exit(127)
		}
	}
}

// rlimits in the order trampolineEnv lists them, after the uid.
var trampolineLimits = []int{unix.RLIMIT_DATA, unix.RLIMIT_CPU, unix.RLIMIT_FSIZE, unix.RLIMIT_NOFILE, unix.RLIMIT_CORE, unix.RLIMIT_NPROC}

// trampolineValue encodes uid, limits (in trampolineLimits' order) and
// the output directory to bind where the job sees it.
func trampolineValue(uid int, limits []uint64, outDir, jobOut string) string {
	parts := []string{strconv.Itoa(uid)}
	for _, l := range limits {
		parts = append(parts, strconv.FormatUint(l, 10))
	}
	return strings.Join(parts, ",") + "\n" + outDir + "\n" + jobOut
}

func trampoline(v string) error {
	fields := strings.Split(v, "\n")
	if len(fields) != 3 {
		return fmt.Errorf("bad %s %q", trampolineEnv, v)
	}
	// The process has a mount namespace of its own (Unshareflags),
	// with private propagation: the bind is the job's alone.
	if err := unix.Mount(fields[1], fields[2], "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the output directory: %w", err)
	}
	parts := strings.Split(fields[0], ",")
	if len(parts) != 1+len(trampolineLimits) || len(os.Args) < 2 {
		return fmt.Errorf("bad %s %q", trampolineEnv, v)
	}
	uid, err := strconv.Atoi(parts[0])
	if err != nil || uid <= 0 {
		return fmt.Errorf("bad uid %q", parts[0])
	}
	limits := make([]unix.Rlimit, len(trampolineLimits))
	for i := range trampolineLimits {
		n, err := strconv.ParseUint(parts[1+i], 10, 64)
		if err != nil {
			return fmt.Errorf("bad limit %q", parts[1+i])
		}
		limits[i] = unix.Rlimit{Cur: n, Max: n}
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(uid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	// A credential change clears the parent-death signal.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("pdeathsig: %w", err)
	}
	if os.Getppid() == 1 {
		return fmt.Errorf("the daemon is gone")
	}
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, trampolineEnv+"=") {
			env = append(env, kv)
		}
	}
	// Everything execve needs is allocated before the limits: under them
	// this process (the daemon's binary, a race-detector build in tests)
	// may not be able to allocate again.
	path, err := syscall.BytePtrFromString(os.Args[1])
	if err != nil {
		return err
	}
	argv, err := syscall.SlicePtrFromStrings(os.Args[1:])
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	for i, res := range trampolineLimits {
		if err := unix.Setrlimit(res, &limits[i]); err != nil {
			return fmt.Errorf("setrlimit %d: %w", res, err)
		}
	}
	_, _, errno := syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(path)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0])))
	return fmt.Errorf("execve %s: %w", os.Args[1], errno)
}
