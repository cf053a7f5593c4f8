package encoder

import (
	"image"
	"math"
	"testing"
)

func TestResample(t *testing.T) {
	stripes := image.NewGray(image.Rect(0, 0, 64, 64)) // alternating columns 0, 255
	for y := 0; y < 64; y++ {
		for x := 1; x < 64; x += 2 {
			stripes.Pix[y*64+x] = 255
		}
	}
	ramp := image.NewGray(image.Rect(0, 0, 2, 2)) // columns 0, 255
	ramp.Pix[1], ramp.Pix[3] = 255, 255
	rgba := image.NewRGBA(image.Rect(0, 0, 2, 2))
	for i := 0; i < 4; i++ {
		copy(rgba.Pix[4*i:], []uint8{uint8(255 * (i % 2)), 10, 20, 255})
	}
	tests := []struct {
		name string
		img  image.Image
		size int
		k    int
		// want(x, y, c) for interior pixels x in [lo, hi)
		lo, hi int
		want   func(x, y, c int) float32
	}{
		// Halving averages stripes instead of picking one phase.
		{"shrink grey", stripes, 32, 1, 1, 31, func(x, y, c int) float32 { return 127.5 }},
		{"shrink grey to rgb", stripes, 16, 3, 1, 15, func(x, y, c int) float32 { return 127.5 }},
		// Doubling is bilinear on pixel centres: 0, ¼, ¾, 1 of the step.
		{"grow", ramp, 4, 1, 0, 4, func(x, y, c int) float32 { return []float32{0, 63.75, 191.25, 255}[x] }},
		{"grow rgb", rgba, 4, 3, 0, 4, func(x, y, c int) float32 { return []float32{[]float32{0, 63.75, 191.25, 255}[x], 10, 20}[c] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]float32, tc.size*tc.size*tc.k)
			resample(dst, tc.img, Config{InputSize: tc.size}, tc.k)
			for y := 0; y < tc.size; y++ {
				for x := tc.lo; x < tc.hi; x++ {
					for c := 0; c < tc.k; c++ {
						got, want := dst[(y*tc.size+x)*tc.k+c], tc.want(x, y, c)
						if math.Abs(float64(got-want)) > 1e-3 {
							t.Fatalf("(%d,%d,%d) = %v, want %v", x, y, c, got, want)
						}
					}
				}
			}
		})
	}
}
