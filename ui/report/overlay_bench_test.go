package report

import (
	"image"
	"image/color"
	"testing"
)

// BenchmarkOverlay draws one report overlay of a 900×900 image (an MVTec
// bottle) with a 320×320 map: heatmap, scaling to 768, banner and legend.
func BenchmarkOverlay(b *testing.B) {
	img := image.NewRGBA(image.Rect(0, 0, 900, 900))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	img.Set(0, 0, color.White)
	m := make([]float32, 320*320)
	for i := range m {
		m[i] = float32(i%320) / 320
	}
	fs, err := newFaces()
	if err != nil {
		b.Fatal(err)
	}
	it := Item{Path: "x.png", Category: "bottle", DefectType: "broken_large", Score: 0.8, Label: "defect", Map: m, MapW: 320, MapH: 320}
	b.ResetTimer()
	for range b.N {
		ov := overlay(fs, img, nil, it, 12, 0.6, 1.5, 0.5)
		if _, err := encodePNG(ov); err != nil {
			b.Fatal(err)
		}
	}
}
