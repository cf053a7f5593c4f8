package mat

import (
	"math"
	"testing"
)

// Every half-precision value survives float16 → float32 → float16, and a
// float32 is rounded to the nearest half (relative error ≤ 2^-11 in the
// normal range).
func TestFloat16RoundTrip(t *testing.T) {
	for h := range 1 << 16 {
		f := Float32From16(uint16(h))
		if math.IsNaN(float64(f)) {
			if back := Float16(f); back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back := Float16(f); back != uint16(h) {
			t.Fatalf("%#04x → %v → %#04x", h, f, back)
		}
	}
	for _, x := range []float32{1, -2.5, 3.14159, 1e-3, 6.1e-5, 65504, 0.1, 123.456} {
		got := Float32From16(Float16(x))
		if d := math.Abs(float64(got-x)) / math.Abs(float64(x)); d > 1.0/2048 {
			t.Errorf("%v → %v: relative error %g", x, got, d)
		}
	}
	if got := Float32From16(Float16(1e6)); !math.IsInf(float64(got), 1) {
		t.Errorf("1e6 → %v, want +Inf (beyond half precision)", got)
	}
}
