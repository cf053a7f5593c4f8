// Package assets holds the workstation's embedded resources and the mask
// contour drawn on overlays (the heatmap colouring is core/heatmap's). It
// imports no GUI toolkit.
package assets

import (
	"image"
	"image/color"
)

// DrawContour paints, in c, every defect pixel of mask (value ≥ 128) that
// touches a normal pixel or the border, onto dst. mask and dst must have the
// same size; a size mismatch draws nothing.
func DrawContour(dst *image.RGBA, mask *image.Gray, c color.RGBA) {
	mb, db := mask.Bounds(), dst.Bounds()
	if mb.Dx() != db.Dx() || mb.Dy() != db.Dy() {
		return
	}
	w, h := mb.Dx(), mb.Dy()
	on := func(x, y int) bool {
		if x < 0 || y < 0 || x >= w || y >= h {
			return false
		}
		return mask.Pix[y*mask.Stride+x] >= 128
	}
	for y := range h {
		for x := range w {
			if on(x, y) && (!on(x-1, y) || !on(x+1, y) || !on(x, y-1) || !on(x, y+1)) {
				dst.SetRGBA(db.Min.X+x, db.Min.Y+y, c)
			}
		}
	}
}
