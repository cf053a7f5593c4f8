package ui

import (
	"image"
	"image/color"
	"testing"

	"fyne.io/fyne/v2"
)

func TestFillPolygon(t *testing.T) {
	tests := []struct {
		name    string
		pts     [][2]float64
		in, out []image.Point
		want    int
	}{
		{"square", [][2]float64{{2, 2}, {6, 2}, {6, 6}, {2, 6}}, []image.Point{{2, 2}, {5, 5}}, []image.Point{{6, 6}, {1, 3}}, 16},
		{"triangle", [][2]float64{{0, 0}, {8, 0}, {0, 8}}, []image.Point{{1, 1}, {0, 6}}, []image.Point{{6, 6}, {7, 2}}, 36},
		{"two points fill nothing", [][2]float64{{0, 0}, {8, 8}}, nil, []image.Point{{3, 3}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := image.NewGray(image.Rect(0, 0, 10, 10))
			fillPolygon(m, tt.pts, 255)
			for _, p := range tt.in {
				if m.GrayAt(p.X, p.Y).Y != 255 {
					t.Errorf("%v not filled", p)
				}
			}
			for _, p := range tt.out {
				if m.GrayAt(p.X, p.Y).Y != 0 {
					t.Errorf("%v filled", p)
				}
			}
			if got := countSet(m); got != tt.want {
				t.Errorf("%d pixels filled, want %d", got, tt.want)
			}
		})
	}
}

func TestPaintDiscAndLine(t *testing.T) {
	m := image.NewGray(image.Rect(0, 0, 20, 20))
	paintDisc(m, 10, 10, 2, 255)
	// Pixel centres within radius 2 of (10, 10): a 12-pixel disc.
	if got := countSet(m); got != 12 {
		t.Errorf("disc of radius 2 set %d pixels, want 12", got)
	}
	paintDisc(m, -5, -5, 3, 255) // off the image: no panic, nothing set
	clear(m.Pix)
	paintLine(m, 2, 5.5, 17, 5.5, 0.6, 255)
	for x := 2; x < 17; x++ {
		if m.GrayAt(x, 5).Y != 255 {
			t.Errorf("line gap at x=%d", x)
		}
	}
	if m.GrayAt(10, 7).Y != 0 {
		t.Error("thin line painted two rows away")
	}
}

func TestViewport(t *testing.T) {
	var v viewport
	v.reset(100, 50)
	size := fyne.NewSize(200, 200) // fit: 2 units per pixel, image centred
	tests := []struct {
		p    fyne.Position
		x, y float64
	}{
		{fyne.NewPos(100, 100), 50, 25},
		{fyne.NewPos(0, 50), 0, 0},
		{fyne.NewPos(200, 150), 100, 50},
	}
	for _, tt := range tests {
		if x, y := v.toImage(tt.p, size); x != tt.x || y != tt.y {
			t.Errorf("toImage(%v) = (%v, %v), want (%v, %v)", tt.p, x, y, tt.x, tt.y)
		}
	}
	// Zooming keeps the point under the pointer fixed.
	p := fyne.NewPos(40, 70)
	x0, y0 := v.toImage(p, size)
	v.zoomAt(2, p, size)
	if x1, y1 := v.toImage(p, size); x1 != x0 || y1 != y0 {
		t.Errorf("zoom moved (%v, %v) to (%v, %v)", x0, y0, x1, y1)
	}
	// Panning right by 20 units at zoom 2 (4 units/pixel) moves 5 pixels left.
	cx := v.cx
	v.pan(20, 0, size)
	if v.cx != cx-5 {
		t.Errorf("pan: cx %v → %v, want %v", cx, v.cx, cx-5)
	}
	// Rendering: the centre pixel shows the image, the band outside is background.
	v.reset(100, 50)
	base := image.NewRGBA(image.Rect(0, 0, 100, 50))
	for i := range base.Pix {
		base.Pix[i] = 255
	}
	out := v.render(base, nil, color.RGBA{}, 0, size, 200, 200).(*image.RGBA)
	if c := out.RGBAAt(100, 100); c.R != 255 {
		t.Errorf("centre %v, want white", c)
	}
	if c := out.RGBAAt(100, 10); c.R == 255 {
		t.Errorf("letterbox band %v is image", c)
	}
}

func BenchmarkViewportRender(b *testing.B) {
	var v viewport
	v.reset(900, 900)
	base := image.NewRGBA(image.Rect(0, 0, 900, 900))
	mask := image.NewGray(image.Rect(0, 0, 900, 900))
	paintDisc(mask, 450, 450, 200, 255)
	size := fyne.NewSize(800, 600)
	b.ReportAllocs()
	for b.Loop() {
		v.render(base, mask, maskTint, 0.5, size, 800, 600)
	}
}

func BenchmarkThumbnail(b *testing.B) {
	img := image.NewRGBA(image.Rect(0, 0, 900, 900))
	for b.Loop() {
		downsize(img, thumbSize)
	}
}
