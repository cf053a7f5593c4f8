// Package orttest opens a CPU ONNX Runtime for tests: with few threads (the
// test machines are small and shared), closed when the test ends, and a
// test failure — not a skip — when the library cannot be loaded, since
// `make test` installs it.
package orttest

import (
	"testing"

	"github.com/dmad/workstation/core/ort"
)

// Open returns a CPU runtime with the given intra-op thread count.
func Open(t testing.TB, threads int) *ort.Runtime {
	t.Helper()
	rt, err := ort.Open(ort.Options{Threads: threads, Device: ort.DeviceCPU})
	if err != nil {
		t.Fatalf("ONNX Runtime: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}
