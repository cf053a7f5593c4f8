package ui

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

const (
	filterAll     = "All"
	maskWith      = "With mask"
	maskWithout   = "Without mask"
	thumbSize     = 112
	thumbCacheCap = 600
)

// dataView imports folders and browses the project's images.
type dataView struct {
	w       *Workstation
	content fyne.CanvasObject

	all      []ImageRecord
	filtered []ImageRecord
	thumbs   *thumbLoader

	catSel, splitSel, labelSel, maskSel *widget.Select
	count                               *widget.Label
	grid                                *widget.GridWrap
	viewer                              *ZoomImage
	info                                *widget.Label
	selected                            string
	// showMask draws the selected image's ground-truth mask over it.
	showMask *widget.Check
	// shown is the selected image and its mask (nil if none) as loaded.
	shown     image.Image
	shownMask *image.Gray
}

func newDataView(w *Workstation) *dataView {
	v := &dataView{w: w}
	v.thumbs = newThumbLoader(w.ctx, 2, thumbSize, thumbCacheCap, func(id string) (image.Image, error) {
		if w.project == nil {
			return nil, errors.New("no project")
		}
		return w.project.LoadImage(id)
	}, &w.workers)
	onFilter := func(string) { v.applyFilter() }
	v.catSel = widget.NewSelect([]string{filterAll}, onFilter)
	v.splitSel = widget.NewSelect([]string{filterAll, string(SplitTrain), string(SplitTest)}, onFilter)
	v.labelSel = widget.NewSelect([]string{filterAll, string(LabelGood), string(LabelDefect)}, onFilter)
	v.maskSel = widget.NewSelect([]string{filterAll, maskWith, maskWithout}, onFilter)
	for _, s := range []*widget.Select{v.catSel, v.splitSel, v.labelSel, v.maskSel} {
		s.SetSelectedIndex(0)
	}
	v.count = widget.NewLabel("")
	importBtn := widget.NewButtonWithIcon("Import folder…", theme.FolderOpenIcon(), func() {
		if !w.needProject() {
			return
		}
		dialog.ShowFolderOpen(func(u fyne.ListableURI, err error) {
			if err == nil && u != nil {
				v.importFolder(u.Path())
			}
		}, w.win)
	})
	importBtn.Importance = widget.HighImportance
	v.count.Truncation = fyne.TextTruncateEllipsis
	bar := container.NewBorder(nil, nil, container.NewHBox(importBtn, widget.NewSeparator(),
		widget.NewLabel("Category"), v.catSel, widget.NewLabel("Split"), v.splitSel,
		widget.NewLabel("Label"), v.labelSel, widget.NewLabel("Mask"), v.maskSel), nil, v.count)

	v.grid = widget.NewGridWrap(func() int { return len(v.filtered) }, newThumbCell, v.updateCell)
	v.grid.OnSelected = func(id widget.GridWrapItemID) {
		if id >= 0 && id < len(v.filtered) {
			v.show(v.filtered[id])
		}
	}
	v.viewer = NewZoomImage()
	v.info = widget.NewLabel("Select an image. Drop folders on the window to import them.")
	v.info.Wrapping = fyne.TextWrapWord
	annotate := widget.NewButtonWithIcon("Annotate", theme.DocumentCreateIcon(), func() {
		if v.selected != "" {
			w.ShowScreen(ScreenAnnotate)
			w.annotate.selectImage(v.selected)
		}
	})
	remove := widget.NewButtonWithIcon("Remove", theme.DeleteIcon(), v.removeSelected)
	v.showMask = widget.NewCheck("Show mask", func(bool) { v.redraw() })
	v.showMask.SetChecked(true)
	right := container.NewBorder(container.NewHBox(zoomControls(v.viewer), annotate, remove, v.showMask), v.info, nil, nil, v.viewer)
	split := container.NewHSplit(v.grid, right)
	split.Offset = 0.55
	v.content = container.NewBorder(bar, nil, nil, nil, split)
	return v
}

// thumbCell is one gallery cell: the thumbnail, then its category, split
// and label, its name (with the defect type), and its mask/seen marks.
type thumbCell struct {
	widget.BaseWidget
	id    string
	img   *canvas.Image
	badge *canvas.Text
	name  *canvas.Text
	marks *canvas.Text
	back  *canvas.Rectangle
}

// cellChars is about how many 10-pt characters fit under a thumbnail.
const cellChars = 22

func newThumbCell() fyne.CanvasObject {
	fg := theme.Color(theme.ColorNameForeground)
	c := &thumbCell{img: canvas.NewImageFromImage(nil), badge: canvas.NewText("", fg),
		name: canvas.NewText("", fg), marks: canvas.NewText("", theme.Color(theme.ColorNamePrimary)),
		back: canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))}
	c.img.FillMode = canvas.ImageFillContain
	c.badge.TextSize = 10
	c.badge.TextStyle.Bold = true
	c.name.TextSize = 10
	c.marks.TextSize = 10
	c.ExtendBaseWidget(c)
	return c
}

func (c *thumbCell) CreateRenderer() fyne.WidgetRenderer {
	top := container.NewBorder(nil, container.NewVBox(c.badge, c.name, c.marks), nil, nil, c.img)
	return widget.NewSimpleRenderer(container.NewStack(c.back, container.NewPadded(top)))
}

func (c *thumbCell) MinSize() fyne.Size { return fyne.NewSize(thumbSize+16, thumbSize+56) }

func (c *thumbCell) setImage(img image.Image) {
	c.img.Image = img
	c.img.Refresh()
}

func (v *dataView) updateCell(i widget.GridWrapItemID, o fyne.CanvasObject) {
	c := o.(*thumbCell)
	if i >= len(v.filtered) {
		return
	}
	r := v.filtered[i]
	c.id = r.ID
	c.name.Text = elideStart(imageName(r), cellChars)
	var col fyne.ThemeColorName
	c.badge.Text, col = badgeText(r)
	c.badge.Text = elideEnd(c.badge.Text, cellChars)
	c.badge.Color = theme.Color(col)
	c.marks.Text = marksText(r)
	c.badge.Refresh()
	c.name.Refresh()
	c.marks.Refresh()
	if img, ok := v.thumbs.cached(r.ID); ok {
		c.setImage(img)
		return
	}
	c.setImage(nil)
	id := r.ID
	v.thumbs.request(id, func(img image.Image) {
		fyne.Do(func() {
			if c.id == id {
				c.setImage(img)
			}
		})
	})
}

func badgeText(r ImageRecord) (string, fyne.ThemeColorName) {
	s := r.Category + " · " + string(r.Split)
	if r.Label != LabelUnknown {
		s += " · " + string(r.Label)
	}
	if r.Label == LabelDefect {
		return s, theme.ColorNameError
	}
	return s, theme.ColorNameSuccess
}

// marksText lists an image's annotations: "mask", "seen anomaly".
func marksText(r ImageRecord) string {
	var marks []string
	if r.HasMask {
		marks = append(marks, "mask")
	}
	if r.SeenAnomaly {
		marks = append(marks, "seen anomaly")
	}
	if r.WeakAnomaly {
		marks = append(marks, "weak")
	}
	return strings.Join(marks, " · ")
}

// imageName is an image's file name with its defect type in front
// ("broken_large/000.png"): MVTec layouts reuse file names across types.
func imageName(r ImageRecord) string {
	name := filepath.Base(r.Path)
	if r.DefectType != "" {
		return r.DefectType + "/" + name
	}
	return name
}

// elideEnd cuts s to n runes, ending it with "…" when cut.
func elideEnd(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// elideStart cuts s to n runes, starting it with "…" when cut (the end of
// a path or name says most).
func elideStart(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return "…" + string(r[len(r)-n+1:])
	}
	return s
}

// reload reads the project's images again and re-applies the filters.
func (v *dataView) reload() {
	v.all = nil
	if v.w.project != nil {
		imgs, err := v.w.project.Images()
		if err != nil {
			v.w.showError(fmt.Errorf("list images of %s: %w", v.w.project.Name(), err), "the project file may be damaged; reopen it")
			return
		}
		v.all = imgs
	}
	cats := []string{filterAll}
	for _, r := range v.all {
		if r.Category != "" && !slices.Contains(cats, r.Category) {
			cats = append(cats, r.Category)
		}
	}
	slices.Sort(cats[1:])
	v.catSel.SetOptions(cats)
	if !slices.Contains(cats, v.catSel.Selected) {
		v.catSel.SetSelectedIndex(0)
	}
	v.applyFilter()
}

func (v *dataView) applyFilter() {
	if v.grid == nil {
		return
	}
	v.filtered = v.filtered[:0]
	for _, r := range v.all {
		if keep(v.catSel.Selected, r.Category) && keep(v.splitSel.Selected, string(r.Split)) &&
			keep(v.labelSel.Selected, string(r.Label)) &&
			(v.maskSel.Selected != maskWith || r.HasMask) && (v.maskSel.Selected != maskWithout || !r.HasMask) {
			v.filtered = append(v.filtered, r)
		}
	}
	v.count.SetText(strconv.Itoa(len(v.filtered)) + " of " + strconv.Itoa(len(v.all)) + " images")
	v.grid.UnselectAll()
	v.grid.Refresh()
}

func keep(sel, value string) bool { return sel == "" || sel == filterAll || sel == value }

func (v *dataView) show(r ImageRecord) {
	v.selected = r.ID
	v.info.SetText(fmt.Sprintf("%s\ncategory %s · split %s · label %s · defect type %s · mask %v · seen anomaly %v",
		r.Path, r.Category, r.Split, orDash(string(r.Label)), orDash(r.DefectType), r.HasMask, r.SeenAnomaly))
	id := r.ID
	p := v.w.project
	v.w.background(func(context.Context) {
		img, err := p.LoadImage(id)
		var mask *image.Gray
		if err == nil && r.HasMask {
			mask, err = p.Mask(id)
			if errors.Is(err, ErrNoMask) {
				mask, err = nil, nil
			}
			if err != nil {
				err = fmt.Errorf("load mask: %w", err)
			}
		}
		fyne.Do(func() {
			if err != nil {
				v.w.showError(fmt.Errorf("load image %s: %w", r.Path, err), "check that the file still exists and is a readable image")
				return
			}
			if v.selected == id {
				v.shown, v.shownMask = img, mask
				v.redraw()
			}
		})
	})
}

// redraw shows the selected image, with its mask when it has one and
// Show mask is on.
func (v *dataView) redraw() {
	if v.shown == nil {
		return
	}
	if v.shownMask != nil && v.showMask.Checked {
		v.viewer.SetImage(maskOverlay(v.shown, v.shownMask, 0.45), true)
		return
	}
	v.viewer.SetImage(v.shown, true)
}

// removeSelected removes the selected image from the project after asking
// (a damaged or vanished image otherwise fails every training run).
func (v *dataView) removeSelected() {
	id := v.selected
	rm, ok := v.w.project.(ImageRemover)
	if id == "" || !ok {
		return
	}
	dialog.ShowConfirm("Remove image", "Remove the selected image, its mask and its cached features from the project? The image file itself stays on disk.", func(yes bool) {
		if yes {
			if err := v.remove(rm, id); err != nil {
				v.w.showError(err, "")
			}
		}
	}, v.w.win)
}

// remove removes image id from the project and the gallery.
func (v *dataView) remove(rm ImageRemover, id string) error {
	if err := rm.RemoveImage(id); err != nil {
		return fmt.Errorf("remove image: %w", err)
	}
	if v.selected == id {
		v.selected = ""
		v.shown, v.shownMask = nil, nil
		v.viewer.SetImage(nil, false)
	}
	v.reload()
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// onDropped imports every dropped folder.
func (v *dataView) onDropped(_ fyne.Position, uris []fyne.URI) {
	if !v.w.needProject() {
		return
	}
	for _, u := range uris {
		if st, err := os.Stat(u.Path()); err == nil && st.IsDir() {
			v.importFolder(u.Path())
		} else {
			v.w.showError(fmt.Errorf("%s is not a folder", u.Path()), "drop folders of images, not single files")
		}
	}
}

// importFolder scans dir with the engine; known layouts are imported
// directly, a plain folder asks for category, split and label first.
func (v *dataView) importFolder(dir string) {
	v.w.background(func(ctx context.Context) {
		scan, err := v.w.deps.Engine.ScanFolder(ctx, dir)
		if err != nil {
			fyne.Do(func() {
				v.w.showError(fmt.Errorf("import %s: %w", dir, err), "choose a folder that holds PNG/JPEG/BMP/TIFF images, or an MVTec AD / VisA dataset")
			})
			return
		}
		if scan.Layout == "plain" {
			fyne.Do(func() { v.askPlain(dir, scan) })
			return
		}
		v.add(ctx, dir, scan.Images)
	})
}

// askPlain asks category, split and label for a plain folder.
func (v *dataView) askPlain(dir string, scan FolderScan) {
	cat := widget.NewEntry()
	cat.SetText(filepath.Base(dir))
	split := widget.NewRadioGroup([]string{string(SplitTrain), string(SplitTest)}, nil)
	split.SetSelected(string(SplitTrain))
	label := widget.NewRadioGroup([]string{string(LabelGood), string(LabelDefect)}, nil)
	label.SetSelected(string(LabelGood))
	items := []*widget.FormItem{
		widget.NewFormItem("Category", cat),
		widget.NewFormItem("Split", split),
		widget.NewFormItem("Label", label),
	}
	d := dialog.NewForm(fmt.Sprintf("Import %d images from %s", len(scan.Images), filepath.Base(dir)), "Import", "Cancel", items, func(ok bool) {
		if ok {
			v.importPlain(dir, scan, cat.Text, Split(split.Selected), Label(label.Selected))
		}
	}, v.w.win)
	d.Resize(fyne.NewSize(480, 300))
	d.Show()
}

// importPlain imports a plain folder's images with the given metadata.
func (v *dataView) importPlain(dir string, scan FolderScan, category string, split Split, label Label) {
	recs := slices.Clone(scan.Images)
	for i := range recs {
		recs[i].Category, recs[i].Split, recs[i].Label = category, split, label
	}
	v.w.background(func(ctx context.Context) { v.add(ctx, dir, recs) })
}

func (v *dataView) add(ctx context.Context, dir string, recs []ImageRecord) {
	p := v.w.project
	if p == nil {
		return
	}
	added, err := p.AddImages(ctx, recs)
	fyne.Do(func() {
		if err != nil {
			v.w.showError(fmt.Errorf("import %s: %w", dir, err), "fix or remove the file named above, then import again; images already imported are kept")
		}
		v.reload()
		if err == nil {
			v.info.SetText(fmt.Sprintf("Imported %d images from %s.", len(added), dir))
		}
	})
}
