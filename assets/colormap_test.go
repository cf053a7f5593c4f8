package assets

import (
	"image"
	"image/color"
	"testing"
)

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
