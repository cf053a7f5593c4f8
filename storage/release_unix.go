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
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	lo := int((page - start%page) % page) // offset of v's first whole page
	hi := len(v) - int((start+uintptr(len(v)))%page)
	if hi <= lo {
		return
	}
	_ = unix.Madvise(v[lo:hi], unix.MADV_DONTNEED)
}
