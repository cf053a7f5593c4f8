package ui

import (
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg" // decode JPEG images
	_ "image/png"  // decode PNG images
	"math"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// viewport maps between widget coordinates and image pixels: the image is
// fitted into the widget, then zoomed by zoom around the image point (cx, cy)
// shown at the widget's centre.
type viewport struct {
	iw, ih int
	zoom   float64
	cx, cy float64
}

func (v *viewport) reset(iw, ih int) {
	v.iw, v.ih, v.zoom = iw, ih, 1
	v.cx, v.cy = float64(iw)/2, float64(ih)/2
}

// scale is widget units per image pixel.
func (v *viewport) scale(size fyne.Size) float64 {
	if v.iw == 0 || v.ih == 0 || size.Width <= 0 || size.Height <= 0 {
		return 1
	}
	return math.Min(float64(size.Width)/float64(v.iw), float64(size.Height)/float64(v.ih)) * v.zoom
}

// toImage returns the image coordinate under widget position p.
func (v *viewport) toImage(p fyne.Position, size fyne.Size) (x, y float64) {
	s := v.scale(size)
	return v.cx + (float64(p.X)-float64(size.Width)/2)/s, v.cy + (float64(p.Y)-float64(size.Height)/2)/s
}

// zoomAt multiplies the zoom by f keeping the image point under p fixed.
func (v *viewport) zoomAt(f float64, p fyne.Position, size fyne.Size) {
	ix, iy := v.toImage(p, size)
	v.zoom = math.Max(1, math.Min(32, v.zoom*f))
	s := v.scale(size)
	v.cx = ix - (float64(p.X)-float64(size.Width)/2)/s
	v.cy = iy - (float64(p.Y)-float64(size.Height)/2)/s
	v.clamp()
}

func (v *viewport) pan(dx, dy float32, size fyne.Size) {
	s := v.scale(size)
	v.cx -= float64(dx) / s
	v.cy -= float64(dy) / s
	v.clamp()
}

func (v *viewport) clamp() {
	v.cx = math.Max(0, math.Min(float64(v.iw), v.cx))
	v.cy = math.Max(0, math.Min(float64(v.ih), v.cy))
}

// render draws base (and, when mask is not nil, mask pixels > 0 blended in
// tint with the given opacity) into a w×h pixel image for a widget of size.
func (v *viewport) render(base *image.RGBA, mask *image.Gray, tint color.RGBA, opacity float64, size fyne.Size, w, h int) image.Image {
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	bg := color.RGBA{40, 40, 44, 255}
	if base == nil || w == 0 || h == 0 {
		draw.Draw(out, out.Bounds(), &image.Uniform{bg}, image.Point{}, draw.Src)
		return out
	}
	k := float64(w) / float64(size.Width) // pixels per widget unit
	s := v.scale(size) * k                // pixels per image pixel
	ox := v.cx - float64(w)/2/s
	oy := v.cy - float64(h)/2/s
	bb := base.Bounds()
	a := uint32(math.Round(opacity * 256))
	xs := make([]int, w)
	for px := range w {
		xs[px] = int(math.Floor(ox + (float64(px)+0.5)/s))
	}
	for py := range h {
		iy := int(math.Floor(oy + (float64(py)+0.5)/s))
		row := out.Pix[py*out.Stride:]
		for px := range w {
			ix := xs[px]
			o := px * 4
			if ix < 0 || iy < 0 || ix >= bb.Dx() || iy >= bb.Dy() {
				row[o], row[o+1], row[o+2], row[o+3] = bg.R, bg.G, bg.B, 255
				continue
			}
			i := iy*base.Stride + ix*4
			r, g, b := uint32(base.Pix[i]), uint32(base.Pix[i+1]), uint32(base.Pix[i+2])
			if mask != nil && mask.Pix[iy*mask.Stride+ix] > 0 {
				r = (r*(256-a) + uint32(tint.R)*a) >> 8
				g = (g*(256-a) + uint32(tint.G)*a) >> 8
				b = (b*(256-a) + uint32(tint.B)*a) >> 8
			}
			row[o], row[o+1], row[o+2], row[o+3] = uint8(r), uint8(g), uint8(b), 255
		}
	}
	return out
}

// toRGBA converts img to an *image.RGBA whose bounds start at (0, 0).
func toRGBA(img image.Image) *image.RGBA {
	if img == nil {
		return nil
	}
	b := img.Bounds()
	if r, ok := img.(*image.RGBA); ok && b.Min == (image.Point{}) {
		return r
	}
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	return out
}

// ZoomImage shows an image that zooms with the mouse wheel (around the
// pointer) and pans by dragging.
type ZoomImage struct {
	widget.BaseWidget
	vp     viewport
	img    *image.RGBA
	raster *canvas.Raster
}

// NewZoomImage returns an empty ZoomImage.
func NewZoomImage() *ZoomImage {
	z := &ZoomImage{}
	z.raster = canvas.NewRaster(func(w, h int) image.Image {
		return z.vp.render(z.img, nil, color.RGBA{}, 0, z.Size(), w, h)
	})
	z.ExtendBaseWidget(z)
	return z
}

// SetImage shows img; keepView keeps the zoom and pan when the size is unchanged.
func (z *ZoomImage) SetImage(img image.Image, keepView bool) {
	z.img = toRGBA(img)
	if z.img == nil {
		z.vp.reset(0, 0)
	} else if b := z.img.Bounds(); !keepView || b.Dx() != z.vp.iw || b.Dy() != z.vp.ih {
		z.vp.reset(b.Dx(), b.Dy())
	}
	z.Refresh()
}

// Zoom returns the zoom factor (1 = fit).
func (z *ZoomImage) Zoom() float64 { return z.vp.zoom }

// ZoomBy zooms around the centre.
func (z *ZoomImage) ZoomBy(f float64) {
	s := z.Size()
	z.vp.zoomAt(f, fyne.NewPos(s.Width/2, s.Height/2), s)
	z.Refresh()
}

// ResetView fits the image again.
func (z *ZoomImage) ResetView() {
	z.vp.reset(z.vp.iw, z.vp.ih)
	z.Refresh()
}

// Scrolled implements fyne.Scrollable: the wheel zooms around the pointer.
func (z *ZoomImage) Scrolled(ev *fyne.ScrollEvent) {
	z.vp.zoomAt(math.Pow(1.2, float64(ev.Scrolled.DY)/10), ev.Position, z.Size())
	z.Refresh()
}

// Dragged implements fyne.Draggable: dragging pans.
func (z *ZoomImage) Dragged(ev *fyne.DragEvent) {
	z.vp.pan(ev.Dragged.DX, ev.Dragged.DY, z.Size())
	z.Refresh()
}

// DragEnd implements fyne.Draggable.
func (z *ZoomImage) DragEnd() {}

// MinSize keeps the view usable.
func (z *ZoomImage) MinSize() fyne.Size { return fyne.NewSize(200, 200) }

// CreateRenderer implements fyne.Widget.
func (z *ZoomImage) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(z.raster)
}

// zoomControls returns − / fit / + buttons for a ZoomImage.
func zoomControls(z interface {
	ZoomBy(float64)
	ResetView()
}) fyne.CanvasObject {
	return container.NewHBox(
		widget.NewButtonWithIcon("", theme.ZoomOutIcon(), func() { z.ZoomBy(1 / 1.25) }),
		widget.NewButtonWithIcon("", theme.ZoomFitIcon(), z.ResetView),
		widget.NewButtonWithIcon("", theme.ZoomInIcon(), func() { z.ZoomBy(1.25) }),
	)
}
