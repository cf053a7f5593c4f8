package pipeline

import (
	"testing"

	"github.com/dmad/workstation/core/banks"
)

// TestForInspection checks that scoring images to inspect takes the fast
// search's inspection dimension only where nothing else is set.
func TestForInspection(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   banks.SearchOptions
		dims int
	}{
		{"exact untouched", banks.SearchOptions{Mode: banks.SearchExact}, 0},
		{"fast default", banks.SearchOptions{Mode: banks.SearchFast}, InspectionFastDims},
		{"fast explicit", banks.SearchOptions{Mode: banks.SearchFast, Fast: banks.FastOptions{Dims: 96}}, 96},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ForInspection(tc.in)
			if got.Fast.Dims != tc.dims || got.Mode != tc.in.Mode {
				t.Fatalf("ForInspection(%+v) = %+v, want dims %d", tc.in, got, tc.dims)
			}
		})
	}
}
