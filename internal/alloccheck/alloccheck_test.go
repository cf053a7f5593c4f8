package alloccheck

import (
	"strings"
	"testing"
)

// recorder is a testing.TB that records Fatalf instead of stopping.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = format
}

var sink []byte

func TestWithin(t *testing.T) {
	tests := []struct {
		name  string
		alloc int
		fail  bool
	}{
		{"nothing", 0, false},
		{"under the bound", 1 << 20, false},
		{"over the bound", 64 << 20, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			Within(r, Bound(1024), func() { sink = make([]byte, tc.alloc) })
			if failed := strings.Contains(r.msg, "allocated"); failed != tc.fail {
				t.Fatalf("allocating %d bytes: failed %v, want %v", tc.alloc, failed, tc.fail)
			}
		})
	}
}
