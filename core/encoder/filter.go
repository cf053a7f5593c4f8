package encoder

import (
	"image"

	"github.com/dmad/workstation/core/heatmap"
)

// Filter maps a defect mask (the size of its image; nonzero = defect) to
// the h0×w0 patch grid, row-major: true marks an anomalous patch (METHOD.md
// §1). The mask first gets the encoder's image geometry (resized, and
// centre-cropped when cfg.Crop, exactly as Preprocess treats the image, with
// the same antialiased bilinear filter); that input-sized mask is then
// resized bilinearly to h0×w0 as torch's F.interpolate(mode="bilinear",
// align_corners=False) does, and every cell whose value is > 0 is flagged.
//
// [ours] A defect smaller than a cell can fall between the sample points of
// that bilinear resize and vanish. When nothing is flagged although the
// input-sized mask has defect pixels, the cell(s) holding the most defect
// area are flagged, so that no annotated image contributes zero patches.
//
// A nil mask flags nothing.
func Filter(mask *image.Gray, h0, w0 int, cfg Config) []bool {
	flags := make([]bool, h0*w0)
	if mask == nil || h0 <= 0 || w0 <= 0 {
		return flags
	}
	cfg = cfg.WithDefaults()
	s := cfg.InputSize
	in := InputMask(mask, cfg)
	hasDefect := false
	for _, v := range in {
		if v > 0 {
			hasDefect = true
			break
		}
	}
	if !hasDefect {
		return flags
	}
	grid := heatmap.ResizeBilinear(in, s, s, h0, w0)
	flagged := false
	for i, v := range grid {
		if v > 0 {
			flags[i] = true
			flagged = true
		}
	}
	if flagged {
		return flags
	}
	// Fallback: area of defect per cell (cells partition the input).
	area := make([]float64, h0*w0)
	best := 0.0
	for y := 0; y < s; y++ {
		cy := y * h0 / s
		for x := 0; x < s; x++ {
			c := cy*w0 + x*w0/s
			area[c] += float64(in[y*s+x])
			best = max(best, area[c])
		}
	}
	for i, a := range area {
		flags[i] = a == best && a > 0
	}
	return flags
}

// InputMask renders a mask (the size of its image) into the encoder's input
// geometry, S×S values in 0..255 row-major, with the filter Preprocess uses
// for images (so a binary mask gets soft edges). Filter and pixel-level
// evaluation at input resolution use it; a nil mask gives nil.
func InputMask(mask *image.Gray, cfg Config) []float32 {
	if mask == nil {
		return nil
	}
	cfg = cfg.WithDefaults()
	out := make([]float32, cfg.InputSize*cfg.InputSize)
	resample(out, mask, cfg, 1)
	return out
}
