package plots

import (
	"image"
	"image/color"
	"testing"
)

// count returns how many pixels of img are exactly c.
func count(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if (color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}) == c {
				n++
			}
		}
	}
	return n
}

func rgba(c color.Color) color.RGBA {
	r, g, b, _ := c.RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}
}

func TestLinesDrawsSeries(t *testing.T) {
	pal := Dark().Palette
	tests := []struct {
		name   string
		series []Series
		unit   bool
	}{
		{"roc", []Series{{Name: "image", X: []float64{0, 0, 1}, Y: []float64{0, 1, 1}}}, true},
		{"loss", []Series{{X: []float64{1, 2, 3}, Y: []float64{3, 2, 1.5}}}, false},
		{"empty series skipped", []Series{{Name: "none"}, {Name: "b", X: []float64{0, 1}, Y: []float64{0, 1}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Lines(tt.name, "x", "y", tt.series, 300, 200, tt.unit, tt.unit)
			if err != nil {
				t.Fatal(err)
			}
			b := img.Bounds()
			if b.Dx() != 300 || b.Dy() != 200 {
				t.Fatalf("size %v, want 300×200", b)
			}
			// The first drawn series is in the first colour (an empty
			// series takes none).
			if count(img, pal[0]) == 0 {
				t.Error("no series pixel drawn")
			}
		})
	}
}

// TestThemes: Lines draws on the application's dark background, Draw with
// Light on white; the corners are the background.
func TestThemes(t *testing.T) {
	s := []Series{{Name: "a", X: []float64{0, 1}, Y: []float64{0, 1}}}
	for _, tt := range []struct {
		name string
		th   Theme
	}{{"dark", Dark()}, {"light", Light()}} {
		img, err := Draw(tt.th, "t", "x", "y", s, 300, 200, true, true)
		if err != nil {
			t.Fatal(err)
		}
		bg := rgba(tt.th.Background)
		for _, p := range []image.Point{{0, 0}, {299, 0}, {0, 199}, {299, 199}} {
			if got := rgba(img.At(p.X, p.Y)); got != bg {
				t.Errorf("%s: corner %v is %v, want the background %v", tt.name, p, got, bg)
			}
		}
		if n := count(img, bg); n < 300*200/2 {
			t.Errorf("%s: only %d background pixels", tt.name, n)
		}
	}
}

// TestNoClippedTickLabel: the last x tick label ("1.0") ends inside the
// image, so the last columns are pure background.
func TestNoClippedTickLabel(t *testing.T) {
	img, err := Lines("ROC", "false-positive rate", "true-positive rate",
		[]Series{{Name: "a", X: []float64{0, 0.2, 1}, Y: []float64{0, 0.9, 1}}}, 420, 320, true, true)
	if err != nil {
		t.Fatal(err)
	}
	bg := rgba(Dark().Background)
	b := img.Bounds()
	for x := b.Max.X - 4; x < b.Max.X; x++ {
		for y := b.Min.Y; y < b.Max.Y; y++ {
			if got := rgba(img.At(x, y)); got != bg {
				t.Fatalf("pixel (%d,%d) is %v: something is drawn up to the right edge", x, y, got)
			}
		}
	}
}

// TestOverlappingCurvesStayVisible: two identical curves both show (the
// first is wider, the second dashed on top of it).
func TestOverlappingCurvesStayVisible(t *testing.T) {
	same := Series{X: []float64{0, 0, 1}, Y: []float64{0, 1, 1}}
	a, b := same, same
	a.Name, b.Name = "disc", "tile"
	img, err := Lines("ROC", "fpr", "tpr", []Series{a, b}, 420, 320, true, true)
	if err != nil {
		t.Fatal(err)
	}
	pal := Dark().Palette
	na, nb := count(img, pal[0]), count(img, pal[1])
	if na < 50 || nb < 50 {
		t.Errorf("pixels of the first curve %d, of the second %d: one hides the other", na, nb)
	}
}

func TestLoss(t *testing.T) {
	img, err := Loss([]float64{1, 0.5}, 200, 120)
	if err != nil || img.Bounds().Dx() != 200 {
		t.Fatalf("Loss: %v, %v", img, err)
	}
}
