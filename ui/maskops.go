package ui

import (
	"image"
	"math"
	"sort"
)

// paintDisc sets every mask pixel within radius r of (cx, cy) to v.
func paintDisc(m *image.Gray, cx, cy, r float64, v uint8) {
	b := m.Bounds()
	x0, x1 := max(b.Min.X, int(math.Floor(cx-r))), min(b.Max.X-1, int(math.Ceil(cx+r)))
	y0, y1 := max(b.Min.Y, int(math.Floor(cy-r))), min(b.Max.Y-1, int(math.Ceil(cy+r)))
	r2 := r * r
	for y := y0; y <= y1; y++ {
		dy := float64(y) + 0.5 - cy
		for x := x0; x <= x1; x++ {
			dx := float64(x) + 0.5 - cx
			if dx*dx+dy*dy <= r2 {
				m.Pix[(y-b.Min.Y)*m.Stride+(x-b.Min.X)] = v
			}
		}
	}
}

// paintLine paints discs of radius r along the segment (x0,y0)-(x1,y1).
func paintLine(m *image.Gray, x0, y0, x1, y1, r float64, v uint8) {
	d := math.Hypot(x1-x0, y1-y0)
	step := math.Max(0.5, r/2)
	n := int(math.Ceil(d / step))
	for i := 0; i <= n; i++ {
		t := 0.0
		if n > 0 {
			t = float64(i) / float64(n)
		}
		paintDisc(m, x0+t*(x1-x0), y0+t*(y1-y0), r, v)
	}
}

// fillPolygon sets the pixels whose centres lie inside the polygon (even-odd
// rule) to v.
func fillPolygon(m *image.Gray, pts [][2]float64, v uint8) {
	if len(pts) < 3 {
		return
	}
	b := m.Bounds()
	var xs []float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		fy := float64(y) + 0.5
		xs = xs[:0]
		for i := range pts {
			a, c := pts[i], pts[(i+1)%len(pts)]
			if (a[1] <= fy) != (c[1] <= fy) {
				xs = append(xs, a[0]+(fy-a[1])/(c[1]-a[1])*(c[0]-a[0]))
			}
		}
		sort.Float64s(xs)
		for i := 0; i+1 < len(xs); i += 2 {
			start := max(b.Min.X, int(math.Ceil(xs[i]-0.5)))
			end := min(b.Max.X-1, int(math.Floor(xs[i+1]-0.5)))
			for x := start; x <= end; x++ {
				m.Pix[(y-b.Min.Y)*m.Stride+(x-b.Min.X)] = v
			}
		}
	}
}

// countSet counts mask pixels > 0.
func countSet(m *image.Gray) int {
	n := 0
	for _, p := range m.Pix {
		if p > 0 {
			n++
		}
	}
	return n
}
