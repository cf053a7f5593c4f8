package ui

import (
	"context"
	"errors"
	"fmt"
	"image"
	"path/filepath"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// annotateView paints defect masks.
type annotateView struct {
	w       *Workstation
	content fyne.CanvasObject

	images      []ImageRecord
	defectsOnly *widget.Check
	list        *widget.List
	editor      *MaskEditor
	tool        *widget.RadioGroup
	size        *widget.Slider
	sizeLabel   *widget.Label
	opacity     *widget.Slider
	seen        *widget.Check
	weak        *widget.Check // shown when the open project can mark weak anomalies
	status      *widget.Label
	current     string // image ID being edited
	settingSeen bool
}

func newAnnotateView(w *Workstation) *annotateView {
	v := &annotateView{w: w}
	v.editor = NewMaskEditor()
	v.defectsOnly = widget.NewCheck("Defects only", nil)
	v.defectsOnly.SetChecked(true)
	v.defectsOnly.OnChanged = func(bool) { v.reload() }
	// A row is the image's name (cut with an ellipsis when the list is
	// narrow) and its marks, which always show in full.
	v.list = widget.NewList(func() int { return len(v.images) }, func() fyne.CanvasObject {
		name := widget.NewLabel("category/type/image.png")
		name.Truncation = fyne.TextTruncateEllipsis
		marks := widget.NewLabel("")
		marks.Importance = widget.HighImportance
		return container.NewBorder(nil, nil, nil, marks, name)
	}, func(i widget.ListItemID, o fyne.CanvasObject) {
		r := v.images[i]
		c := o.(*fyne.Container)
		c.Objects[0].(*widget.Label).SetText(r.Category + "/" + imageName(r))
		c.Objects[1].(*widget.Label).SetText(marksText(r))
		c.Refresh() // lay the row out again: the marks' width changed
	})
	v.list.OnSelected = func(i widget.ListItemID) {
		if i < len(v.images) {
			v.open(v.images[i])
		}
	}
	v.tool = widget.NewRadioGroup([]string{ToolBrush.String(), ToolEraser.String(), ToolPolygon.String()}, func(s string) {
		for _, t := range []Tool{ToolBrush, ToolEraser, ToolPolygon} {
			if t.String() == s && v.editor.Tool() != t {
				v.editor.SetTool(t)
			}
		}
	})
	v.tool.Horizontal = true
	v.tool.Required = true
	v.tool.SetSelected(ToolBrush.String())
	v.sizeLabel = widget.NewLabel("")
	v.size = widget.NewSlider(1, 100)
	v.size.OnChanged = func(f float64) {
		if f != v.editor.BrushSize() {
			v.editor.SetBrushSize(f)
		}
	}
	v.opacity = widget.NewSlider(0, 1)
	v.opacity.Step = 0.05
	v.opacity.SetValue(0.5)
	v.opacity.OnChanged = v.editor.SetOpacity
	v.editor.OnChanged = v.syncControls
	v.seen = widget.NewCheck("Mark as seen anomaly", func(on bool) {
		if v.settingSeen || v.current == "" {
			return
		}
		if err := v.w.project.SetSeenAnomaly(v.current, on); err != nil {
			v.w.showError(fmt.Errorf("mark seen anomaly: %w", err), "reopen the project and try again")
			return
		}
		v.refreshRecord()
	})
	v.status = widget.NewLabel("Pick an image on the left.")
	undo := widget.NewButtonWithIcon("Undo", theme.ContentUndoIcon(), func() { v.editor.Undo() })
	redo := widget.NewButtonWithIcon("Redo", theme.ContentRedoIcon(), func() { v.editor.Redo() })
	clearBtn := widget.NewButtonWithIcon("Clear", theme.DeleteIcon(), v.editor.Clear)
	save := widget.NewButtonWithIcon("Save mask", theme.DocumentSaveIcon(), func() {
		if err := v.save(); err != nil {
			v.w.showError(err, "check that the project file is writable, then save again")
		}
	})
	save.Importance = widget.HighImportance
	// Two rows: in one the toolbar set the window's minimum width.
	tools := container.NewVBox(
		container.NewHBox(v.tool, widget.NewSeparator(), widget.NewLabel("Size"),
			container.NewGridWrap(fyne.NewSize(120, 36), v.size), v.sizeLabel, widget.NewLabel("Opacity"),
			container.NewGridWrap(fyne.NewSize(100, 36), v.opacity)),
		container.NewHBox(undo, redo, clearBtn, zoomControls(v.editor)))
	v.weak = widget.NewCheck("Defective, no mask (weak)", func(on bool) {
		wm, ok := v.w.project.(WeakMarker)
		if v.settingSeen || v.current == "" || !ok {
			return
		}
		if err := wm.SetWeakAnomaly(v.current, on); err != nil {
			v.w.showError(fmt.Errorf("mark weak anomaly: %w", err), "reopen the project and try again")
			return
		}
		v.refreshRecord()
	})
	v.weak.Hide()
	bottom := container.NewHBox(v.seen, v.weak, save, v.status)
	help := widget.NewLabelWithStyle("B brush · E eraser · P polygon (click points, double-click or Enter closes) · [ ] size · Ctrl+Z / Ctrl+Y · wheel zooms",
		fyne.TextAlignLeading, fyne.TextStyle{Italic: true})
	help.Wrapping = fyne.TextWrapWord
	left := container.NewBorder(v.defectsOnly, nil, nil, nil, v.list)
	center := container.NewBorder(container.NewVBox(tools, help), bottom, nil, nil, v.editor)
	split := container.NewHSplit(left, center)
	split.Offset = 0.27
	v.content = split
	v.syncControls()
	return v
}

func (v *annotateView) syncControls() {
	v.sizeLabel.SetText(fmt.Sprintf("%.0f px", v.editor.BrushSize()))
	if v.size.Value != v.editor.BrushSize() {
		v.size.SetValue(v.editor.BrushSize())
	}
	if v.tool.Selected != v.editor.Tool().String() {
		v.tool.SetSelected(v.editor.Tool().String())
	}
	if v.current != "" {
		state := "saved"
		if v.editor.Dirty() {
			state = "unsaved changes"
		}
		v.status.SetText(fmt.Sprintf("%s · %d defect pixels · %s", v.editor.Tool(), countSet(v.editor.Mask()), state))
	}
}

// registerShortcuts adds window-wide Ctrl+Z / Ctrl+Y that act while the
// Annotate screen is shown.
func (v *annotateView) registerShortcuts(c fyne.Canvas) {
	for _, s := range []*desktop.CustomShortcut{
		{KeyName: fyne.KeyZ, Modifier: fyne.KeyModifierShortcutDefault},
		{KeyName: fyne.KeyY, Modifier: fyne.KeyModifierShortcutDefault},
		{KeyName: fyne.KeyZ, Modifier: fyne.KeyModifierShortcutDefault | fyne.KeyModifierShift},
	} {
		c.AddShortcut(s, func(sc fyne.Shortcut) {
			if v.w.currentScreen() == ScreenAnnotate {
				v.editor.TypedShortcut(sc)
			}
		})
	}
}

func (v *annotateView) reload() {
	v.images = v.images[:0]
	if p := v.w.project; p != nil {
		all, err := p.Images()
		if err != nil {
			v.w.showError(fmt.Errorf("list images: %w", err), "reopen the project")
			return
		}
		for _, r := range all {
			if !v.defectsOnly.Checked || r.Label == LabelDefect || r.HasMask {
				v.images = append(v.images, r)
			}
		}
	}
	v.list.Refresh()
}

// selectImage opens the image with the given ID, showing all images if the
// defect filter hides it.
func (v *annotateView) selectImage(id string) {
	for pass := 0; pass < 2; pass++ {
		for i, r := range v.images {
			if r.ID == id {
				v.list.Select(i)
				return
			}
		}
		v.defectsOnly.SetChecked(false)
	}
}

func (v *annotateView) open(r ImageRecord) {
	if v.current == r.ID {
		return
	}
	if v.editor.Dirty() {
		if err := v.save(); err != nil {
			v.w.showError(err, "the previous mask was not saved; check the project file")
		}
	}
	v.current = r.ID
	v.status.SetText("Loading " + filepath.Base(r.Path) + "…")
	p := v.w.project
	v.w.background(func(context.Context) {
		img, err := p.LoadImage(r.ID)
		var mask *image.Gray
		if err == nil {
			mask, err = p.Mask(r.ID)
			if errors.Is(err, ErrNoMask) {
				mask, err = nil, nil
			}
		}
		fyne.Do(func() {
			if v.current != r.ID {
				return
			}
			if err != nil {
				v.w.showError(fmt.Errorf("open %s for annotation: %w", r.Path, err), "check that the image file still exists")
				return
			}
			v.editor.SetImage(img, mask)
			v.settingSeen = true
			v.seen.SetChecked(r.SeenAnomaly)
			if _, ok := v.w.project.(WeakMarker); ok {
				v.weak.SetChecked(r.WeakAnomaly)
				v.weak.Show()
			} else {
				v.weak.Hide()
			}
			v.settingSeen = false
			v.syncControls()
			if c := fyne.CurrentApp().Driver().CanvasForObject(v.editor); c != nil {
				c.Focus(v.editor)
			}
		})
	})
}

// save writes the mask through the project; an empty mask deletes it.
func (v *annotateView) save() error {
	if v.current == "" || v.editor.Mask() == nil {
		return errors.New("no image is open")
	}
	m := v.editor.Mask()
	var out *image.Gray
	if countSet(m) > 0 {
		out = image.NewGray(m.Bounds())
		copy(out.Pix, m.Pix)
	}
	if err := v.w.project.SaveMask(v.current, out); err != nil {
		return fmt.Errorf("save mask of image %s: %w", v.current, err)
	}
	v.editor.MarkSaved()
	v.syncControls()
	v.refreshRecord()
	return nil
}

func (v *annotateView) refreshRecord() {
	all, err := v.w.project.Images()
	if err != nil {
		return
	}
	for _, r := range all {
		for i := range v.images {
			if v.images[i].ID == r.ID {
				v.images[i] = r
			}
		}
	}
	v.list.Refresh()
	v.w.data.reload()
}
