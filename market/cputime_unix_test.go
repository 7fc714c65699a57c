//go:build unix

package market

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user+system) this process has used. The
// benchmarks report it per operation because wall time on a shared
// machine says more about the neighbours than about the code.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
