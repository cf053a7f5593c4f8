// Package plots renders the workstation's line charts (ROC, PR, training
// loss) to images with gonum.org/v1/plot. It imports no GUI toolkit, so the
// report writer and the views share it.
package plots

import (
	"fmt"
	"image"
	"image/color"

	"gonum.org/v1/plot"
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

// palette holds distinguishable line colours.
var palette = [...]color.RGBA{
	{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255},
	{255, 127, 14, 255}, {148, 103, 189, 255}, {140, 86, 75, 255},
}

// Lines renders series as a line chart of w×h pixels at 96 dpi. Empty series
// are skipped; unit fixes both axes to [0, 1] (ROC and PR curves) and, when
// diagonal is also set, draws the chance line.
func Lines(title, xLabel, yLabel string, series []Series, w, h int, unit, diagonal bool) (image.Image, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	if unit {
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1.02
		if diagonal {
			d, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
			if err != nil {
				return nil, fmt.Errorf("plot %q: chance line: %w", title, err)
			}
			d.Color = color.Gray{160}
			d.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
			p.Add(d)
		}
	}
	for i, s := range series {
		n := min(len(s.X), len(s.Y))
		if n == 0 {
			continue
		}
		xys := make(plotter.XYs, n)
		for k := range n {
			xys[k] = plotter.XY{X: s.X[k], Y: s.Y[k]}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("plot %q: series %q: %w", title, s.Name, err)
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		if s.Name != "" {
			p.Legend.Add(s.Name, l)
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
	c := vgimg.NewWith(vgimg.UseWH(vg.Length(w)*vg.Inch/dpi, vg.Length(h)*vg.Inch/dpi), vgimg.UseDPI(dpi))
	p.Draw(draw.New(c))
	return c.Image(), nil
}

// Loss renders a training-loss curve (one value per epoch, epochs from 1).
func Loss(losses []float64, w, h int) (image.Image, error) {
	xs := make([]float64, len(losses))
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	return Lines("Training loss", "epoch", "loss", []Series{{X: xs, Y: losses}}, w, h, false, false)
}
