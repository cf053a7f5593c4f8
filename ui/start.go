package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/dmad/workstation"
)

// startView is the start screen: recent projects, New, Open, Demo.
type startView struct {
	w       *Workstation
	content fyne.CanvasObject
	recent  *fyne.Container
	// resume returns to the open project's screens (hidden when none is open).
	resume *widget.Button
}

func newStartView(w *Workstation) *startView {
	v := &startView{w: w, recent: container.NewVBox()}
	title := widget.NewLabelWithStyle("DMAD Inspection Workstation", fyne.TextAlignCenter, fyne.TextStyle{Bold: true})
	sub := widget.NewLabelWithStyle("Train one anomaly detector for all your product categories, annotate defects, inspect batches.",
		fyne.TextAlignCenter, fyne.TextStyle{Italic: true})
	newBtn := widget.NewButtonWithIcon("New project…", theme.ContentAddIcon(), v.newProject)
	openBtn := widget.NewButtonWithIcon("Open project…", theme.FolderOpenIcon(), v.openProject)
	demoBtn := widget.NewButtonWithIcon("Demo: generate a synthetic dataset and train it", theme.MediaPlayIcon(), func() { v.w.RunDemo() })
	demoBtn.Importance = widget.HighImportance
	v.resume = widget.NewButtonWithIcon("", theme.NavigateNextIcon(), func() { v.w.ShowScreen(ScreenData) })
	v.resume.Hide()
	actions := container.NewGridWithColumns(1, newBtn, openBtn, demoBtn)
	recentCard := widget.NewCard("Recent projects", "", container.NewVScroll(v.recent))
	v.content = container.NewCenter(container.NewVBox(title, sub, widget.NewSeparator(), v.resume,
		container.NewGridWrap(fyne.NewSize(640, 150), actions), container.NewGridWrap(fyne.NewSize(640, 300), recentCard)))
	return v
}

func (v *startView) reload() {
	if p := v.w.project; p != nil {
		v.resume.SetText("Back to " + elideEnd(p.Name(), 40))
		v.resume.Show()
	} else {
		v.resume.Hide()
	}
	v.recent.RemoveAll()
	paths := v.w.recent.Recent()
	if len(paths) == 0 {
		v.recent.Add(widget.NewLabel("No recent projects yet."))
	}
	for _, p := range paths {
		path := p
		// The file name on the button; its folder beside it, cut at the
		// start (the end of a path says most) and then, should the card
		// still be too narrow, with an ellipsis instead of clipping.
		b := widget.NewButtonWithIcon(elideEnd(filepath.Base(path), 32), theme.DocumentIcon(), func() {
			if err := v.w.OpenProject(path); err != nil {
				v.w.showError(err, "check that the file exists and is a workstation project; it may have been moved")
			}
		})
		b.Alignment = widget.ButtonAlignLeading
		dir := widget.NewLabel(elideStart(filepath.Dir(path), 52))
		dir.Truncation = fyne.TextTruncateEllipsis
		dir.Importance = widget.LowImportance
		v.recent.Add(container.NewBorder(nil, nil, b, nil, dir))
	}
}

func (v *startView) newProject() {
	name := widget.NewEntry()
	name.SetPlaceHolder("e.g. Line 3 bottles")
	folder := widget.NewEntry()
	home, _ := os.UserHomeDir()
	folder.SetText(home)
	browse := widget.NewButtonWithIcon("", theme.FolderOpenIcon(), func() {
		dialog.ShowFolderOpen(func(u fyne.ListableURI, err error) {
			if err == nil && u != nil {
				folder.SetText(u.Path())
			}
		}, v.w.win)
	})
	items := []*widget.FormItem{
		widget.NewFormItem("Name", name),
		widget.NewFormItem("Folder", container.NewBorder(nil, nil, nil, browse, folder)),
	}
	d := dialog.NewForm("New project", "Create", "Cancel", items, func(ok bool) {
		if !ok {
			return
		}
		if name.Text == "" {
			v.w.showError(errors.New("the project needs a name"), "type a name, then press Create again")
			return
		}
		path := filepath.Join(folder.Text, safeFileName(name.Text)+workstation.ProjectExt)
		if err := v.w.CreateProject(path, name.Text); err != nil {
			v.w.showError(err, "choose a folder you can write to")
		}
	}, v.w.win)
	d.Resize(fyne.NewSize(520, 220))
	d.Show()
}

func (v *startView) openProject() {
	dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil || r == nil {
			return
		}
		path := r.URI().Path()
		r.Close()
		if err := v.w.OpenProject(path); err != nil {
			v.w.showError(err, "choose a project file made by the workstation ("+workstation.ProjectExt+", or "+workstation.LegacyExt+" from earlier versions)")
		}
	}, v.w.win)
}

func safeFileName(s string) string {
	out := []rune{}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			out = append(out, r)
		case r == ' ':
			out = append(out, '_')
		}
	}
	if len(out) == 0 {
		return "project"
	}
	return string(out)
}

// DemoSettings are the small training settings of the demo.
var demoSettings = Settings{Regime: SemiSupervised, Device: DeviceAuto, Epochs: 5, InputSize: 224, CoresetRatio: 0.1, Threshold: 0.5}

// RunDemo generates a synthetic dataset, creates a project for it, imports
// it, marks one annotated defect per category as seen, trains with small
// settings, evaluates, and shows Results. It runs in the background with a
// progress dialog; errors appear as dialogs.
func (w *Workstation) RunDemo() {
	if w.deps.Engine == nil || w.deps.CreateProject == nil {
		w.showError(errors.New("the demo needs the engine and project storage"), "run the full workstation build")
		return
	}
	if bi, ok := w.deps.Engine.(BackboneImporter); ok {
		if err := bi.CheckBackbone(); err != nil {
			if bi.MissingBackbone(err) {
				w.offerBackboneImport(bi, err, w.RunDemo) // the demo starts once one is imported
			} else {
				w.showError(err, "the backbone's files are damaged or do not match its card: import it again")
			}
			return
		}
	}
	stage := widget.NewLabel("Generating a synthetic dataset…")
	stage.Truncation = fyne.TextTruncateEllipsis // the dialog keeps its size as the text changes
	bar := widget.NewProgressBar()
	ctx, cancel := context.WithCancel(w.ctx)
	prog := dialog.NewCustom("Demo", "Cancel", container.NewVBox(stage, bar), w.win)
	prog.SetOnClosed(cancel)
	prog.Resize(fyne.NewSize(420, 140))
	prog.Show()
	w.background(func(context.Context) {
		defer cancel()
		err := w.runDemo(ctx, func(s string, f float64) {
			fyne.Do(func() { stage.SetText(s); bar.SetValue(f) })
		})
		fyne.Do(func() {
			prog.Hide()
			if err != nil && !errors.Is(err, context.Canceled) {
				w.showError(err, hintFor(err, w.deps.DataDir))
				return
			}
			if err == nil {
				w.ShowScreen(ScreenResults)
			}
		})
	})
}

func (w *Workstation) runDemo(ctx context.Context, report func(string, float64)) error {
	dir := filepath.Join(w.deps.DataDir, "demo-"+time.Now().Format("20060102-150405"))
	data := filepath.Join(dir, "data")
	w.demoData = data
	if err := w.deps.Engine.GenerateDemo(ctx, data); err != nil {
		return fmt.Errorf("demo: generate dataset in %s: %w", data, err)
	}
	report("Creating the project…", 0.1)
	p, err := w.deps.CreateProject(filepath.Join(dir, "demo"+workstation.ProjectExt), "Demo")
	if err != nil {
		return fmt.Errorf("demo: create project: %w", err)
	}
	fyne.DoAndWait(func() { w.SetProject(p) })
	report("Importing images…", 0.15)
	scan, err := w.deps.Engine.ScanFolder(ctx, data)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	recs, err := p.AddImages(ctx, scan.Images)
	if err != nil {
		return fmt.Errorf("demo: import: %w", err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if r.Label == LabelDefect && r.HasMask && !seen[r.Category] {
			seen[r.Category] = true
			if err := p.SetSeenAnomaly(r.ID, true); err != nil {
				return fmt.Errorf("demo: mark seen anomaly: %w", err)
			}
		}
	}
	if err := p.SaveSettings(demoSettings); err != nil {
		return fmt.Errorf("demo: save settings: %w", err)
	}
	fyne.Do(w.data.reload)
	report("Training…", 0.2)
	req := TrainRequest{Project: p, Regime: demoSettings.Regime, Device: demoSettings.Device, Epochs: demoSettings.Epochs,
		InputSize: demoSettings.InputSize, CoresetRatio: demoSettings.CoresetRatio, Quick: true}
	m, err := w.deps.Engine.Train(ctx, req, func(pr Progress) {
		w.train.observe(pr)
		msg := "Training: " + pr.Stage
		if pr.Epochs > 0 { // stages before the mapper's training have no epochs
			msg += fmt.Sprintf(", epoch %d/%d", pr.Epoch, pr.Epochs)
		}
		report(msg, 0.2+0.6*pr.Fraction)
	})
	if err != nil {
		return fmt.Errorf("demo: train: %w", err)
	}
	report("Evaluating…", 0.8)
	run, err := w.deps.Engine.Score(ctx, ScoreRequest{Project: p, ModelID: m.ID, Device: demoSettings.Device}, func(pr Progress) {
		report("Evaluating…", 0.8+0.2*pr.Fraction)
	})
	if err != nil {
		return fmt.Errorf("demo: evaluate: %w", err)
	}
	if _, err := p.SaveRun(run); err != nil {
		return fmt.Errorf("demo: save run: %w", err)
	}
	return nil
}
