package encoder

import "image"

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
	grid := ResizeBilinear(in, s, s, h0, w0)
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

// ResizeBilinear resizes a single-channel h×w map (row-major) to oh×ow the
// way torch's F.interpolate(mode="bilinear", align_corners=False) and ONNX
// Resize(mode="linear", coordinate_transformation_mode="half_pixel") do: no
// antialiasing, source coordinates (i+0.5)·h/oh − 0.5 clamped to the map.
func ResizeBilinear(src []float32, h, w, oh, ow int) []float32 {
	out := make([]float32, oh*ow)
	ys := bilinearTaps(h, oh)
	xs := bilinearTaps(w, ow)
	for i, ty := range ys {
		r0, r1 := src[ty.i0*w:], src[ty.i1*w:]
		for j, tx := range xs {
			top := r0[tx.i0]*(1-tx.f) + r0[tx.i1]*tx.f
			bot := r1[tx.i0]*(1-tx.f) + r1[tx.i1]*tx.f
			out[i*ow+j] = top*(1-ty.f) + bot*ty.f
		}
	}
	return out
}

type tap struct {
	i0, i1 int
	f      float32
}

func bilinearTaps(in, out int) []tap {
	taps := make([]tap, out)
	scale := float64(in) / float64(out)
	for i := range taps {
		x := (float64(i)+0.5)*scale - 0.5
		if x < 0 {
			x = 0
		}
		i0 := int(x)
		if i0 > in-1 {
			i0 = in - 1
		}
		i1 := min(i0+1, in-1)
		taps[i] = tap{i0, i1, float32(x - float64(i0))}
	}
	return taps
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
