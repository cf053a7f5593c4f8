package heatmap

import (
	"image"
	"image/color"
	"math"
	"testing"
)

func uniform(w, h int, c color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return img
}

// blob is an n×n map: peak at the centre falling off with distance.
func blob(n int, peak float64) []float32 {
	m := make([]float32, n*n)
	c := float64(n-1) / 2
	for y := range n {
		for x := range n {
			d := math.Hypot(float64(x)-c, float64(y)-c) / float64(n)
			m[y*n+x] = float32(peak * math.Exp(-8*d*d))
		}
	}
	return m
}

func TestOverlayAboveLeavesBelowThresholdUntouched(t *testing.T) {
	white := color.RGBA{255, 255, 255, 255}
	img := uniform(64, 64, white)
	// A clean part: the whole map is below the threshold (0.3–0.6 of 0.66).
	m := blob(16, 0.6)
	for i := range m {
		m[i] += 0.3 * float32(i%3) / 3
		m[i] = min(m[i], 0.65)
	}
	out := OverlayAbove(img, m, 16, 16, 0.66, 1, 0.8)
	for i, v := range out.Pix {
		if v != 255 {
			t.Fatalf("a white part below the threshold was tinted at byte %d (%d)", i, v)
		}
	}
	// A defect: the centre is above the threshold and tinted warm, the
	// corners below it stay white.
	out = OverlayAbove(img, blob(16, 1.0), 16, 16, 0.66, 1, 0.8)
	if c := out.RGBAAt(32, 32); c == white || c.B >= c.R {
		t.Errorf("centre above the threshold is %v, want a warm tint", c)
	}
	if c := out.RGBAAt(0, 0); c != white {
		t.Errorf("corner below the threshold is %v, want the original white", c)
	}
	// Higher above the threshold is redder than just above it.
	near, far := AboveColor(0), AboveColor(1)
	if !(near.G > far.G) {
		t.Errorf("ramp: at threshold %v, top %v", near, far)
	}
}

func TestPeakCalibratedShowsBorderlineFails(t *testing.T) {
	const threshold = 0.66
	m := blob(16, 0.6) // smoothing lowered the peak below the image score
	for _, tc := range []struct {
		score  float64
		colour bool
	}{{0.67, true}, {0.66, true}, {0.65, false}, {0.3, false}} {
		cal := PeakCalibrated(m, tc.score)
		above := 0
		for _, v := range cal {
			if float64(v) >= threshold-1e-6 {
				above++
			}
		}
		if (above > 0) != tc.colour {
			t.Errorf("score %.2f: %d pixels at or above the threshold, want colour %v", tc.score, above, tc.colour)
		}
		out := OverlayAbove(uniform(32, 32, color.RGBA{200, 200, 200, 255}), cal, 16, 16, threshold, 1, 1)
		if tinted := out.RGBAAt(16, 16) != (color.RGBA{200, 200, 200, 255}); tinted != tc.colour {
			t.Errorf("score %.2f: centre tinted %v, want %v", tc.score, tinted, tc.colour)
		}
	}
	if got := PeakCalibrated(make([]float32, 4), 1); got[0] != 0 {
		t.Errorf("zero map scaled: %v", got)
	}
}

func TestContourFollowsTheLevel(t *testing.T) {
	const n, level = 32, 0.5
	m := blob(n, 1)
	segs := Contour(m, n, n, level)
	if len(segs) < 16 {
		t.Fatalf("%d segments around a round blob", len(segs))
	}
	// Every end point lies where the (bilinear) map crosses the level.
	at := func(x, y float64) float64 {
		x, y = x-0.5, y-0.5
		x0, y0 := int(math.Floor(x)), int(math.Floor(y))
		x1, y1 := min(x0+1, n-1), min(y0+1, n-1)
		fx, fy := x-float64(x0), y-float64(y0)
		v := func(x, y int) float64 { return float64(m[y*n+x]) }
		return (1-fy)*((1-fx)*v(x0, y0)+fx*v(x1, y0)) + fy*((1-fx)*v(x0, y1)+fx*v(x1, y1))
	}
	for _, s := range segs {
		for _, p := range [][2]float64{{s.X0, s.Y0}, {s.X1, s.Y1}} {
			if v := at(p[0], p[1]); math.Abs(v-level) > 0.02 {
				t.Fatalf("contour point %v has value %.3f, level %.2f", p, v, level)
			}
		}
	}
	if segs := Contour(blob(n, 0.4), n, n, level); len(segs) != 0 {
		t.Errorf("%d segments on a map entirely below the level", len(segs))
	}
	dst := uniform(64, 64, color.RGBA{0, 0, 0, 255})
	DrawSegments(dst, segs, n, n, color.RGBA{255, 255, 255, 255}, 2)
	lit := 0
	for i := 0; i < len(dst.Pix); i += 4 {
		if dst.Pix[i] > 0 {
			lit++
		}
	}
	if lit < 100 || dst.RGBAAt(32, 32).R != 0 {
		t.Errorf("drawn contour: %d lit pixels, centre %v", lit, dst.RGBAAt(32, 32))
	}
}

func TestNormaliseAndLegend(t *testing.T) {
	if Normalise(0.66, 0.66) != 1 || Normalise(0.99, 0.66) != 1.5 || Normalise(-1, -1) != 1 {
		t.Errorf("Normalise: %v %v %v", Normalise(0.66, 0.66), Normalise(0.99, 0.66), Normalise(-1, -1))
	}
	lg := Legend(200, 4, 2)
	mark := ThresholdX(200, 2)
	if mark != 100 || lg.RGBAAt(mark, 0) != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("threshold mark at %d: %v", mark, lg.RGBAAt(mark, 0))
	}
	if c := lg.RGBAAt(10, 0); c.R != c.B {
		t.Errorf("below the threshold the legend is %v, want grey", c)
	}
	if c := lg.RGBAAt(190, 0); c.R < 150 || c.G > 100 {
		t.Errorf("top of the legend is %v, want red/magenta", c)
	}
	sb := SideBySide(uniform(10, 8, color.RGBA{255, 0, 0, 255}), uniform(12, 6, color.RGBA{0, 0, 255, 255}), 2, color.Black)
	if sb.Bounds().Dx() != 24 || sb.Bounds().Dy() != 8 || sb.RGBAAt(5, 5).R != 255 || sb.RGBAAt(15, 5).B != 255 || sb.RGBAAt(11, 1).R != 0 {
		t.Errorf("side by side %v", sb.Bounds())
	}
}

// BenchmarkOverlayAbove colours a 900×900 image (a bottle's size) from a
// 224×224 map, with the contour: what the gallery does per selection.
func BenchmarkOverlayAbove(b *testing.B) {
	img := uniform(900, 900, color.RGBA{240, 240, 240, 255})
	m := PeakCalibrated(blob(224, 1), 0.9)
	b.ResetTimer()
	for range b.N {
		ov := OverlayAbove(img, m, 224, 224, 0.66, 1.2, 0.6)
		DrawSegments(ov, Contour(m, 224, 224, 0.66), 224, 224, color.RGBA{0, 220, 255, 255}, 3.6)
	}
}

// Render is what every view draws: a failing image shows colour at its
// peak even when its smoothed map stays below the threshold, a passing one
// none, and the outline only when asked.
func TestRender(t *testing.T) {
	white := color.RGBA{255, 255, 255, 255}
	img := uniform(64, 64, white)
	m := blob(16, 0.5) // the smoothed map peaks at 0.5, under the threshold
	tinted := func(ov *image.RGBA) (colour, outline int) {
		for y := range 64 {
			for x := range 64 {
				switch c := ov.RGBAAt(x, y); {
				case c == OutlineColor:
					outline++
				case c != white:
					colour++
				}
			}
		}
		return
	}
	for _, tc := range []struct {
		name        string
		score       float64
		outline     bool
		wantColour  bool
		wantOutline bool
	}{
		{"fail", 0.8, false, true, false},
		{"fail with outline", 0.8, true, true, true},
		{"pass", 0.5, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ov := Render(img, m, 16, 16, tc.score, Style{Threshold: 0.6, Top: 1.5, Opacity: 0.6, Outline: tc.outline})
			colour, outline := tinted(ov)
			if (colour > 0) != tc.wantColour || (outline > 0) != tc.wantOutline {
				t.Errorf("%d tinted and %d outline pixels; want colour %v, outline %v", colour, outline, tc.wantColour, tc.wantOutline)
			}
			if ov.RGBAAt(0, 0) != white {
				t.Errorf("the corner, far below the threshold, is %v", ov.RGBAAt(0, 0))
			}
		})
	}
	if ov := Render(img, nil, 0, 0, 0.9, Style{Threshold: 0.6, Top: 1.5, Opacity: 1, Outline: true}); ov.RGBAAt(32, 32) != white {
		t.Error("Render without a map changed the image")
	}
}
