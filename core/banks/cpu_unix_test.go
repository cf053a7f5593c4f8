//go:build unix

package banks

import (
	"syscall"
	"time"
)

// cpuSeconds is the process's user+system CPU time: on a shared machine it
// says more than the wall time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
