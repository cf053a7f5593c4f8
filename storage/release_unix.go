//go:build unix

package storage

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// releaseMapped tells the kernel this process no longer needs the pages of
// the memory-mapped file under v (a value read inside a transaction, after
// it has been decoded into Go memory). bbolt maps the file shared and
// read-only, so the pages stay in the page cache and a later read faults
// them back in; dropping them from the mapping keeps the process's resident
// set to its own memory instead of growing by every feature matrix a
// training streams (2.4 GB of them for the benchmark's 1,636 images). Only
// whole pages inside v are released; errors are ignored, since the advice
// is an optimisation.
func releaseMapped(v []byte) {
	if len(v) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	first := (start + page - 1) &^ (page - 1)
	end := (start + uintptr(len(v))) &^ (page - 1)
	if end <= first {
		return
	}
	unix.Syscall(unix.SYS_MADVISE, first, end-first, unix.MADV_DONTNEED)
}
