package assets

import (
	"image"
	"image/color"
	"testing"
)

func TestTurboEnds(t *testing.T) {
	tests := []struct {
		name string
		v    float64
		want func(c color.RGBA) bool
	}{
		{"low is blue", 0.15, func(c color.RGBA) bool { return c.B > c.R && c.B > c.G }},
		{"high is red", 1, func(c color.RGBA) bool { return c.R > c.G && c.R > c.B }},
		{"middle is green-ish", 0.5, func(c color.RGBA) bool { return c.G > c.B }},
		{"below range clamps", -3, func(c color.RGBA) bool { return c == Turbo(0) }},
		{"above range clamps", 7, func(c color.RGBA) bool { return c == Turbo(1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := Turbo(tt.v); !tt.want(c) {
				t.Errorf("Turbo(%v) = %v", tt.v, c)
			}
		})
	}
}

func TestHeatmapOverlay(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	m := []float32{0, 0, 0, 1} // 2×2 map: bottom-right hot
	got := HeatmapOverlay(img, m, 2, 2, 0, 1, 1)
	if tl, br := got.RGBAAt(0, 0), got.RGBAAt(7, 7); tl != Turbo(0) || br != Turbo(1) {
		t.Errorf("corners = %v, %v; want %v, %v", tl, br, Turbo(0), Turbo(1))
	}
	plain := HeatmapOverlay(img, m, 2, 2, 0, 1, 0)
	if c := plain.RGBAAt(7, 7); c != (color.RGBA{0, 0, 0, 255}) {
		t.Errorf("opacity 0 changed the image: %v", c)
	}
}

func TestDrawContour(t *testing.T) {
	mask := image.NewGray(image.Rect(0, 0, 10, 10))
	for y := 2; y < 8; y++ {
		for x := 2; x < 8; x++ {
			mask.SetGray(x, y, color.Gray{255})
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, 10, 10))
	red := color.RGBA{255, 0, 0, 255}
	DrawContour(dst, mask, red)
	if dst.RGBAAt(2, 5) != red || dst.RGBAAt(7, 7) != red {
		t.Error("border pixel not drawn")
	}
	if dst.RGBAAt(5, 5) == red {
		t.Error("interior pixel drawn")
	}
	if dst.RGBAAt(0, 0) == red {
		t.Error("outside pixel drawn")
	}
}

func BenchmarkHeatmapOverlay(b *testing.B) {
	img := image.NewRGBA(image.Rect(0, 0, 900, 900))
	m := make([]float32, 28*28)
	for i := range m {
		m[i] = float32(i%28) / 28
	}
	for b.Loop() {
		HeatmapOverlay(img, m, 28, 28, 0, 1, 0.5)
	}
}
