package pipeline

import (
	"context"
	"image"
	"image/color"
	"testing"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
)

func bankSearch() banks.SearchOptions { return banks.SearchOptions{} }

// scoreAll scores feats with m (exact search, no categories).
func scoreAll(t testing.TB, rt *ort.Runtime, m *Model, feats []*mat.Matrix) []ImageResult {
	t.Helper()
	sc, err := NewScorer(rt, m, bankSearch())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	res, err := sc.ScoreImages(context.Background(), feats, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

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
