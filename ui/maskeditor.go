package ui

import (
	"image"
	"image/color"
	"math"
	"slices"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"
)

// Tool is a mask-editing tool.
type Tool int

// Mask-editing tools.
const (
	ToolBrush Tool = iota
	ToolEraser
	ToolPolygon
)

// String names the tool for labels.
func (t Tool) String() string {
	return [...]string{"Brush", "Eraser", "Polygon"}[t]
}

const maxUndo = 40

// MaskEditor paints a binary defect mask over an image: brush and eraser
// strokes by dragging (or clicking), polygons by clicking points and closing
// with a double-click or Enter, undo/redo, and zoom with the wheel.
// Keys when focused: B brush, E eraser, P polygon, [ and ] brush size,
// Ctrl+Z undo, Ctrl+Y (or Ctrl+Shift+Z) redo, Escape drops an open polygon.
type MaskEditor struct {
	widget.BaseWidget

	vp      viewport
	base    *image.RGBA
	mask    *image.Gray
	tool    Tool
	brush   float64 // radius in image pixels
	opacity float64

	undo, redo [][]byte
	poly       [][2]float64
	stroking   bool
	last       [2]float64
	dirty      bool

	// OnChanged is called after every edit and tool/size change.
	OnChanged func()

	raster *canvas.Raster
}

// NewMaskEditor returns an empty editor.
func NewMaskEditor() *MaskEditor {
	e := &MaskEditor{brush: 8, opacity: 0.5}
	e.raster = canvas.NewRaster(e.draw)
	e.ExtendBaseWidget(e)
	return e
}

var maskTint = color.RGBA{255, 40, 40, 255}

func (e *MaskEditor) draw(w, h int) image.Image {
	img := e.vp.render(e.base, e.mask, maskTint, e.opacity, e.Size(), w, h).(*image.RGBA)
	if len(e.poly) > 0 {
		k := float64(w) / float64(e.Size().Width)
		s := e.vp.scale(e.Size()) * k
		toPx := func(p [2]float64) (float64, float64) {
			return (p[0]-e.vp.cx)*s + float64(w)/2, (p[1]-e.vp.cy)*s + float64(h)/2
		}
		for i := 1; i < len(e.poly); i++ {
			x0, y0 := toPx(e.poly[i-1])
			x1, y1 := toPx(e.poly[i])
			drawSegment(img, x0, y0, x1, y1, color.RGBA{255, 230, 0, 255})
		}
		for _, p := range e.poly {
			x, y := toPx(p)
			for dy := -2; dy <= 2; dy++ {
				for dx := -2; dx <= 2; dx++ {
					img.SetRGBA(int(x)+dx, int(y)+dy, color.RGBA{255, 230, 0, 255})
				}
			}
		}
	}
	return img
}

func drawSegment(img *image.RGBA, x0, y0, x1, y1 float64, c color.RGBA) {
	n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
	for i := 0; i <= n; i++ {
		t := float64(i) / float64(n)
		img.SetRGBA(int(x0+t*(x1-x0)), int(y0+t*(y1-y0)), c)
	}
}

// SetImage shows img with mask (nil for an empty mask); the undo history is
// cleared. A mask of another size than the image is replaced by an empty one.
func (e *MaskEditor) SetImage(img image.Image, mask *image.Gray) {
	e.base = toRGBA(img)
	b := image.Rect(0, 0, 0, 0)
	if e.base != nil {
		b = e.base.Bounds()
	}
	if mask == nil || mask.Bounds().Dx() != b.Dx() || mask.Bounds().Dy() != b.Dy() {
		mask = image.NewGray(b)
	} else {
		c := image.NewGray(b)
		for y := range b.Dy() {
			copy(c.Pix[y*c.Stride:y*c.Stride+b.Dx()], mask.Pix[(y)*mask.Stride:y*mask.Stride+b.Dx()])
		}
		mask = c
	}
	e.mask = mask
	e.vp.reset(b.Dx(), b.Dy())
	e.undo, e.redo, e.poly, e.dirty = nil, nil, nil, false
	e.Refresh()
}

// Mask returns the edited mask (shared; copy it before keeping it).
func (e *MaskEditor) Mask() *image.Gray { return e.mask }

// Dirty reports whether the mask changed since SetImage or MarkSaved.
func (e *MaskEditor) Dirty() bool { return e.dirty }

// MarkSaved clears the dirty flag.
func (e *MaskEditor) MarkSaved() { e.dirty = false }

// Tool returns the current tool.
func (e *MaskEditor) Tool() Tool { return e.tool }

// SetTool selects a tool; an open polygon is dropped when leaving Polygon.
func (e *MaskEditor) SetTool(t Tool) {
	if t != ToolPolygon {
		e.poly = nil
	}
	e.tool = t
	e.changed()
	e.Refresh()
}

// BrushSize returns the brush radius in image pixels.
func (e *MaskEditor) BrushSize() float64 { return e.brush }

// SetBrushSize sets the brush radius in image pixels (1..200).
func (e *MaskEditor) SetBrushSize(r float64) {
	e.brush = math.Max(1, math.Min(200, r))
	e.changed()
}

// SetOpacity sets the mask overlay opacity in [0, 1].
func (e *MaskEditor) SetOpacity(o float64) {
	e.opacity = math.Max(0, math.Min(1, o))
	e.Refresh()
}

func (e *MaskEditor) changed() {
	if e.OnChanged != nil {
		e.OnChanged()
	}
}

func (e *MaskEditor) snapshot() {
	if e.mask == nil {
		return
	}
	e.undo = append(e.undo, slices.Clone(e.mask.Pix))
	if len(e.undo) > maxUndo {
		e.undo = e.undo[1:]
	}
	e.redo = nil
}

func (e *MaskEditor) edited() {
	e.dirty = true
	e.changed()
	e.Refresh()
}

// CanUndo and CanRedo report whether history is available.
func (e *MaskEditor) CanUndo() bool { return len(e.undo) > 0 }

// CanRedo reports whether an undone edit can be redone.
func (e *MaskEditor) CanRedo() bool { return len(e.redo) > 0 }

// Undo reverts the last edit; it returns false when there is none.
func (e *MaskEditor) Undo() bool {
	if len(e.undo) == 0 {
		return false
	}
	e.redo = append(e.redo, slices.Clone(e.mask.Pix))
	e.mask.Pix = e.undo[len(e.undo)-1]
	e.undo = e.undo[:len(e.undo)-1]
	e.edited()
	return true
}

// Redo re-applies the last undone edit; it returns false when there is none.
func (e *MaskEditor) Redo() bool {
	if len(e.redo) == 0 {
		return false
	}
	e.undo = append(e.undo, slices.Clone(e.mask.Pix))
	e.mask.Pix = e.redo[len(e.redo)-1]
	e.redo = e.redo[:len(e.redo)-1]
	e.edited()
	return true
}

// Clear erases the whole mask (undoable).
func (e *MaskEditor) Clear() {
	if e.mask == nil {
		return
	}
	e.snapshot()
	clear(e.mask.Pix)
	e.poly = nil
	e.edited()
}

func (e *MaskEditor) value() uint8 {
	if e.tool == ToolEraser {
		return 0
	}
	return 255
}

// Dragged implements fyne.Draggable: brush and eraser strokes.
func (e *MaskEditor) Dragged(ev *fyne.DragEvent) {
	if e.mask == nil || e.tool == ToolPolygon {
		return
	}
	x, y := e.vp.toImage(ev.Position, e.Size())
	if !e.stroking {
		e.snapshot()
		e.stroking = true
		e.last[0], e.last[1] = e.vp.toImage(ev.Position.Subtract(fyne.NewPos(ev.Dragged.DX, ev.Dragged.DY)), e.Size())
	}
	paintLine(e.mask, e.last[0], e.last[1], x, y, e.brush, e.value())
	e.last = [2]float64{x, y}
	e.edited()
}

// DragEnd implements fyne.Draggable.
func (e *MaskEditor) DragEnd() { e.stroking = false }

// Tapped implements fyne.Tappable: a dab, or a polygon point.
func (e *MaskEditor) Tapped(ev *fyne.PointEvent) {
	if c := fyne.CurrentApp().Driver().CanvasForObject(e); c != nil {
		c.Focus(e)
	}
	if e.mask == nil {
		return
	}
	x, y := e.vp.toImage(ev.Position, e.Size())
	if e.tool == ToolPolygon {
		e.poly = append(e.poly, [2]float64{x, y})
		e.Refresh()
		return
	}
	e.snapshot()
	paintDisc(e.mask, x, y, e.brush, e.value())
	e.edited()
}

// DoubleTapped implements fyne.DoubleTappable: closes the polygon.
func (e *MaskEditor) DoubleTapped(ev *fyne.PointEvent) {
	if e.tool == ToolPolygon {
		x, y := e.vp.toImage(ev.Position, e.Size())
		if n := len(e.poly); n == 0 || math.Hypot(e.poly[n-1][0]-x, e.poly[n-1][1]-y) > 1 {
			e.poly = append(e.poly, [2]float64{x, y})
		}
		e.ClosePolygon()
	}
}

// AddPolygonPoint adds a point in image coordinates to the open polygon.
func (e *MaskEditor) AddPolygonPoint(x, y float64) {
	e.poly = append(e.poly, [2]float64{x, y})
	e.Refresh()
}

// ClosePolygon fills the open polygon as defect (undoable) and starts a
// new one; fewer than three points are dropped.
func (e *MaskEditor) ClosePolygon() {
	if len(e.poly) >= 3 && e.mask != nil {
		e.snapshot()
		fillPolygon(e.mask, e.poly, 255)
		e.poly = nil
		e.edited()
		return
	}
	e.poly = nil
	e.Refresh()
}

// Scrolled implements fyne.Scrollable: zoom around the pointer.
func (e *MaskEditor) Scrolled(ev *fyne.ScrollEvent) {
	e.vp.zoomAt(math.Pow(1.2, float64(ev.Scrolled.DY)/10), ev.Position, e.Size())
	e.Refresh()
}

// ZoomBy zooms around the centre.
func (e *MaskEditor) ZoomBy(f float64) {
	s := e.Size()
	e.vp.zoomAt(f, fyne.NewPos(s.Width/2, s.Height/2), s)
	e.Refresh()
}

// ResetView fits the image again.
func (e *MaskEditor) ResetView() {
	e.vp.reset(e.vp.iw, e.vp.ih)
	e.Refresh()
}

// FocusGained implements fyne.Focusable.
func (e *MaskEditor) FocusGained() {}

// FocusLost implements fyne.Focusable.
func (e *MaskEditor) FocusLost() {}

// TypedRune implements fyne.Focusable: tool and size keys.
func (e *MaskEditor) TypedRune(r rune) {
	switch r {
	case 'b', 'B':
		e.SetTool(ToolBrush)
	case 'e', 'E':
		e.SetTool(ToolEraser)
	case 'p', 'P':
		e.SetTool(ToolPolygon)
	case '[':
		e.SetBrushSize(e.brush / 1.25)
	case ']':
		e.SetBrushSize(e.brush * 1.25)
	}
}

// TypedKey implements fyne.Focusable: Enter closes, Escape drops the polygon.
func (e *MaskEditor) TypedKey(ev *fyne.KeyEvent) {
	switch ev.Name {
	case fyne.KeyReturn, fyne.KeyEnter:
		e.ClosePolygon()
	case fyne.KeyEscape:
		e.poly = nil
		e.Refresh()
	}
}

// TypedShortcut implements fyne.Shortcutable: undo and redo.
func (e *MaskEditor) TypedShortcut(s fyne.Shortcut) {
	if isUndo(s) {
		e.Undo()
	} else if isRedo(s) {
		e.Redo()
	}
}

func isUndo(s fyne.Shortcut) bool {
	if ks, ok := s.(fyne.KeyboardShortcut); ok {
		return ks.Key() == fyne.KeyZ && ks.Mod()&fyne.KeyModifierShift == 0 && ks.Mod()&(fyne.KeyModifierControl|fyne.KeyModifierSuper) != 0
	}
	_, ok := s.(*fyne.ShortcutUndo)
	return ok
}

func isRedo(s fyne.Shortcut) bool {
	if ks, ok := s.(fyne.KeyboardShortcut); ok {
		ctrl := ks.Mod()&(fyne.KeyModifierControl|fyne.KeyModifierSuper) != 0
		return ctrl && (ks.Key() == fyne.KeyY || ks.Key() == fyne.KeyZ && ks.Mod()&fyne.KeyModifierShift != 0)
	}
	_, ok := s.(*fyne.ShortcutRedo)
	return ok
}

// Cursor implements desktop.Cursorable.
func (e *MaskEditor) Cursor() desktop.Cursor { return desktop.CrosshairCursor }

// MinSize keeps the editor usable.
func (e *MaskEditor) MinSize() fyne.Size { return fyne.NewSize(240, 240) }

// CreateRenderer implements fyne.Widget.
func (e *MaskEditor) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(e.raster)
}
