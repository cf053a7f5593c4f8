// Package plots renders the workstation's line charts (ROC, PR, training
// loss) to images with gonum.org/v1/plot. It imports no GUI toolkit, so the
// report writer and the views share it.
//
// Lines and Loss draw in the desktop application's dark theme; Draw takes
// a Theme (Light for printed reports). Overlapping curves stay
// distinguishable: each series has its own colour, dash pattern, line width
// (the first widest, so a curve drawn over it leaves its edges visible) and
// marker shape, and the legend shows all three.
package plots

import (
	"fmt"
	"image"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Series is one named polyline.
type Series struct {
	Name string
	X, Y []float64
}

// Theme holds a chart's colours.
type Theme struct {
	Background, Foreground, Grid, Chance color.Color
	// Palette holds the series colours, in order.
	Palette []color.RGBA
}

// Dark is the desktop application's theme (Fyne's dark background and
// text), with the Okabe–Ito colours, which stay apart for colour-blind
// readers, brightened for a dark background.
func Dark() Theme {
	return Theme{
		Background: color.RGBA{23, 23, 24, 255},
		Foreground: color.RGBA{220, 220, 222, 255},
		Grid:       color.RGBA{60, 60, 64, 255},
		Chance:     color.RGBA{120, 120, 126, 255},
		Palette: []color.RGBA{
			{86, 180, 233, 255}, {230, 159, 0, 255}, {0, 190, 140, 255},
			{240, 228, 66, 255}, {204, 121, 167, 255}, {240, 110, 40, 255},
		},
	}
}

// Light is a white-background theme for printed or HTML reports.
func Light() Theme {
	return Theme{
		Background: color.White,
		Foreground: color.Black,
		Grid:       color.RGBA{220, 220, 220, 255},
		Chance:     color.Gray{160},
		Palette: []color.RGBA{
			{0, 114, 178, 255}, {213, 94, 0, 255}, {0, 158, 115, 255},
			{204, 121, 167, 255}, {86, 180, 233, 255}, {230, 159, 0, 255},
		},
	}
}

// dashes, glyphs: one per series (cycled) so that curves of the same
// colour family or lying on top of each other can still be told apart.
func dashes(i int) []vg.Length {
	switch i % 4 {
	case 1:
		return []vg.Length{vg.Points(6), vg.Points(3)}
	case 2:
		return []vg.Length{vg.Points(2), vg.Points(2)}
	case 3:
		return []vg.Length{vg.Points(7), vg.Points(2), vg.Points(2), vg.Points(2)}
	}
	return nil
}

func glyph(i int) draw.GlyphDrawer {
	return [...]draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}, draw.RingGlyph{}, draw.PlusGlyph{}}[i%6]
}

// markersPerSeries is how many markers mark each curve (not every point:
// pixel-level curves have thousands).
const markersPerSeries = 6

// Lines renders series as a line chart of w×h pixels at 96 dpi in the
// application's dark theme. Empty series are skipped; unit fixes both axes
// to [0, 1] (ROC and PR curves) and, when diagonal is also set, draws the
// chance line.
func Lines(title, xLabel, yLabel string, series []Series, w, h int, unit, diagonal bool) (image.Image, error) {
	return Draw(Dark(), title, xLabel, yLabel, series, w, h, unit, diagonal)
}

// Draw is Lines in theme th.
func Draw(th Theme, title, xLabel, yLabel string, series []Series, w, h int, unit, diagonal bool) (image.Image, error) {
	p := plot.New()
	p.BackgroundColor = th.Background
	sans := func(size vg.Length) font.Font {
		return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
	}
	p.Title.Text = title
	p.Title.TextStyle.Color = th.Foreground
	p.Title.TextStyle.Font = sans(12)
	p.Title.Padding = vg.Points(4)
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		ax.Color = th.Foreground
		ax.Label.TextStyle.Color = th.Foreground
		ax.Label.TextStyle.Font = sans(11)
		ax.Tick.Color = th.Foreground
		ax.Tick.Label.Color = th.Foreground
		ax.Tick.Label.Font = sans(10)
	}
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Legend.TextStyle.Color = th.Foreground
	p.Legend.TextStyle.Font = sans(10)
	grid := plotter.NewGrid()
	grid.Vertical.Color, grid.Horizontal.Color = th.Grid, th.Grid
	p.Add(grid)
	if unit {
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1.02
		if diagonal {
			d, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
			if err != nil {
				return nil, fmt.Errorf("plot %q: chance line: %w", title, err)
			}
			d.Color = th.Chance
			d.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
			p.Add(d)
		}
	}
	if !unit && nonNegative(series) {
		p.Y.Min = 0 // a loss: its axis starts at 0, even for one point
	}
	drawn := 0
	for _, s := range series {
		n := min(len(s.X), len(s.Y))
		if n == 0 {
			continue
		}
		i := drawn
		drawn++
		xys := make(plotter.XYs, n)
		for k := range n {
			xys[k] = plotter.XY{X: s.X[k], Y: s.Y[k]}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("plot %q: series %q: %w", title, s.Name, err)
		}
		col := th.Palette[i%len(th.Palette)]
		l.Color = col
		l.Dashes = dashes(i)
		l.Width = vg.Points(max(1, 2.5-0.5*float64(i)))
		// Markers at evenly spaced points, shifted per series so that
		// those of curves lying on each other do not coincide.
		marks := make(plotter.XYs, 0, markersPerSeries)
		for k := range markersPerSeries {
			j := (2*k + 1) * n / (2 * markersPerSeries)
			j = min(n-1, j+i*n/(4*markersPerSeries))
			marks = append(marks, xys[j])
		}
		sc, err := plotter.NewScatter(marks)
		if err != nil {
			return nil, fmt.Errorf("plot %q: series %q markers: %w", title, s.Name, err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(3), Shape: glyph(i)}
		p.Add(l, sc)
		if s.Name != "" {
			p.Legend.Add(s.Name, l, sc)
		}
	}
	// Keep the legend off the curves: ROC curves hug the top-left, PR
	// curves the top, loss curves fall to the bottom-right.
	p.Legend.Top = !unit
	p.Legend.Left = unit && !diagonal
	p.Legend.XOffs = -vg.Points(4)
	if p.Legend.Left {
		p.Legend.XOffs = vg.Points(4)
	}
	p.Legend.YOffs = vg.Points(4)
	const dpi = 96
	c := vgimg.NewWith(vgimg.UseWH(vg.Length(w)*vg.Inch/dpi, vg.Length(h)*vg.Inch/dpi), vgimg.UseDPI(dpi),
		vgimg.UseBackgroundColor(th.Background))
	// gonum centres the last tick label on the axis end, half of it past
	// the canvas: leave room for it on the right (and for "1.0" on top).
	p.Draw(draw.Crop(draw.New(c), 0, -vg.Points(12), 0, -vg.Points(2)))
	return c.Image(), nil
}

// nonNegative reports whether no series has a value below 0.
func nonNegative(series []Series) bool {
	for _, s := range series {
		for _, y := range s.Y {
			if y < 0 {
				return false
			}
		}
	}
	return true
}

// Loss renders a training-loss curve (one value per epoch, epochs from 1)
// in the application's dark theme.
func Loss(losses []float64, w, h int) (image.Image, error) {
	xs := make([]float64, len(losses))
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	return Lines("Training loss", "epoch", "loss", []Series{{X: xs, Y: losses}}, w, h, false, false)
}
