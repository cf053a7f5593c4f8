package pipeline

import (
	"image"
	"image/color"

	"github.com/dmad/workstation/core/banks"
)

func bankSearch() banks.SearchOptions { return banks.SearchOptions{} }

func imageGray(w, h int, on func(x, y int) bool) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			if on(x, y) {
				g.SetGray(x, y, color.Gray{Y: 255})
			}
		}
	}
	return g
}
