package ui

import (
	"image"
	"image/draw"

	"github.com/dmad/workstation/assets"
)

// maskOverlay returns a copy of img with the defect pixels of mask (value
// ≥ 128) tinted in the mask editor's red at alpha (0..1) and outlined. A mask of another size
// is scaled to the image (nearest pixel).
func maskOverlay(img image.Image, mask *image.Gray, alpha float64) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	if mask == nil {
		return out
	}
	mb := mask.Bounds()
	w, h := b.Dx(), b.Dy()
	scaled := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		my := mb.Min.Y + y*mb.Dy()/h
		for x := range w {
			mx := mb.Min.X + x*mb.Dx()/w
			if mask.Pix[(my-mb.Min.Y)*mask.Stride+(mx-mb.Min.X)] < 128 {
				continue
			}
			scaled.Pix[y*scaled.Stride+x] = 255
			i := y*out.Stride + 4*x
			for c, v := range [3]uint8{maskTint.R, maskTint.G, maskTint.B} {
				out.Pix[i+c] = uint8(float64(out.Pix[i+c])*(1-alpha) + float64(v)*alpha)
			}
		}
	}
	assets.DrawContour(out, scaled, maskTint)
	return out
}
