// Package alloccheck bounds what one call may allocate. Fuzz targets use it
// to show that no size read from outside bytes reaches the allocator before
// it has been checked: a decoder may allocate a small multiple of its
// input, never what a header claims.
package alloccheck

import (
	"runtime"
	"testing"
)

// Bound is what decoding n bytes of input may allocate: eight times the
// input plus 8 MiB of fixed buffers (the figure the fuzz notes state).
func Bound(n int) uint64 { return uint64(8*n + 8<<20) }

// Within runs fn and fails t if it allocated more than bound bytes.
// The count is process-wide, so callers must not run in parallel with
// other allocating tests (fuzzing workers run one input at a time).
func Within(t testing.TB, bound uint64, fn func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > bound {
		t.Fatalf("allocated %d bytes, bound %d", grew, bound)
	}
}
