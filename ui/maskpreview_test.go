package ui

import (
	"image"
	"image/color"
	"testing"
)

func TestMaskOverlay(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = 100
	}
	// A 4×4 mask with its top-left quarter marked: scaled ×2 to the image.
	mask := image.NewGray(image.Rect(0, 0, 4, 4))
	mask.SetGray(0, 0, color.Gray{255})
	mask.SetGray(1, 0, color.Gray{255})
	mask.SetGray(0, 1, color.Gray{255})
	mask.SetGray(1, 1, color.Gray{255})
	out := maskOverlay(img, mask, 0.5)
	if img.Pix[0] != 100 {
		t.Fatal("maskOverlay changed its input")
	}
	tests := []struct {
		x, y   int
		tinted bool
	}{{0, 0, true}, {3, 3, true}, {1, 1, true}, {4, 4, false}, {7, 0, false}, {0, 7, false}}
	for _, tt := range tests {
		c := out.RGBAAt(tt.x, tt.y)
		if got := c.R > c.G+40; got != tt.tinted {
			t.Errorf("pixel (%d,%d) = %v, tinted %v, want %v", tt.x, tt.y, c, got, tt.tinted)
		}
	}
	if c := out.RGBAAt(1, 1); c != (color.RGBA{177, 70, 70, 100}) {
		t.Errorf("inner mask pixel %v, want the 50%% blend of grey 100 and the tint", c)
	}
	if c := out.RGBAAt(3, 3); c != maskTint {
		t.Errorf("mask border pixel %v, want the contour colour", c)
	}
	if got := maskOverlay(img, nil, 0.5); got.RGBAAt(0, 0) != img.RGBAAt(0, 0) {
		t.Error("no mask: the copy differs from the image")
	}
}
