package plots

import (
	"image/color"
	"testing"
)

func TestLinesDrawsSeries(t *testing.T) {
	tests := []struct {
		name   string
		series []Series
		unit   bool
	}{
		{"roc", []Series{{Name: "image", X: []float64{0, 0, 1}, Y: []float64{0, 1, 1}}}, true},
		{"loss", []Series{{X: []float64{1, 2, 3}, Y: []float64{3, 2, 1.5}}}, false},
		{"empty series skipped", []Series{{Name: "none"}, {Name: "b", X: []float64{0, 1}, Y: []float64{0, 1}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Lines(tt.name, "x", "y", tt.series, 300, 200, tt.unit, tt.unit)
			if err != nil {
				t.Fatal(err)
			}
			b := img.Bounds()
			if b.Dx() != 300 || b.Dy() != 200 {
				t.Fatalf("size %v, want 300×200", b)
			}
			// The first series is drawn in palette[0] or palette[1]: look for it.
			found := false
			for y := b.Min.Y; y < b.Max.Y && !found; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					r, g, bl, _ := img.At(x, y).RGBA()
					c := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}
					if c == palette[0] || c == palette[1] {
						found = true
						break
					}
				}
			}
			if !found {
				t.Error("no series pixel drawn")
			}
		})
	}
}

func TestLoss(t *testing.T) {
	img, err := Loss([]float64{1, 0.5}, 200, 120)
	if err != nil || img.Bounds().Dx() != 200 {
		t.Fatalf("Loss: %v, %v", img, err)
	}
}
