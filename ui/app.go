package ui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/dmad/workstation/assets"
)

// Screen names, in navigation order.
const (
	ScreenStart    = "Start"
	ScreenData     = "Data"
	ScreenAnnotate = "Annotate"
	ScreenTrain    = "Train"
	ScreenResults  = "Results"
	ScreenInspect  = "Inspect"
)

// Workstation is the application window and its views.
type Workstation struct {
	app    fyne.App
	win    fyne.Window
	deps   Deps
	recent RecentStore

	ctx     context.Context
	cancel  context.CancelFunc
	tasks   sync.WaitGroup // one-off background work (Wait waits for it)
	workers sync.WaitGroup // long-lived workers, stopped by Close

	// demoData is the dataset folder of the last demo, for screenshots.
	demoData string
	// shotReady tells Screenshots that a step's background work is far
	// enough along to be photographed.
	shotReady chan struct{}

	project Project
	tabs    *container.AppTabs
	// body holds the start screen or the tabs, under the header.
	body   *fyne.Container
	header *header

	start    *startView
	data     *dataView
	annotate *annotateView
	train    *trainView
	results  *resultsView
	inspect  *inspectView
	live     *liveView
	// metrics is Results' Metrics tab (installMetrics).
	metrics *metricsPanel
}

// New builds the main window; call ShowAndRun (or Window().Show) next.
func New(a fyne.App, deps Deps) *Workstation {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Workstation{app: a, deps: deps, recent: deps.Recent, ctx: ctx, cancel: cancel}
	if w.recent == nil {
		w.recent = NewPrefsRecent(a.Preferences())
	}
	if w.deps.DataDir == "" {
		if root := a.Storage().RootURI(); root != nil {
			w.deps.DataDir = root.Path()
		}
	}
	w.win = a.NewWindow("DMAD Inspection Workstation")
	w.win.SetIcon(fyne.NewStaticResource("workstation.svg", assets.AppIcon))
	w.win.Resize(fyne.NewSize(1200, 800))
	w.win.SetOnClosed(w.Close)

	w.start = newStartView(w)
	w.data = newDataView(w)
	w.annotate = newAnnotateView(w)
	w.train = newTrainView(w)
	w.results = newResultsView(w)
	w.inspect = newInspectView(w)
	w.live = newLiveView(w)

	w.tabs = container.NewAppTabs(
		container.NewTabItem(ScreenData, w.data.content),
		container.NewTabItem(ScreenAnnotate, w.annotate.content),
		container.NewTabItem(ScreenTrain, w.train.content),
		container.NewTabItem(ScreenResults, w.results.content),
		container.NewTabItem(ScreenInspect, w.inspect.content),
		container.NewTabItem(ScreenLive, w.live.content),
	)
	w.tabs.SetTabLocation(container.TabLocationLeading)
	w.tabs.OnSelected = func(t *container.TabItem) { w.onScreen(t.Text) }
	w.header = newHeader(w)
	w.body = container.NewStack()
	w.win.SetContent(container.NewBorder(w.header.content, nil, nil, nil, w.body))
	w.installMetrics()
	w.keepWindowSize()
	w.win.SetOnDropped(w.data.onDropped)
	w.annotate.registerShortcuts(w.win.Canvas())
	w.win.Canvas().SetOnTypedKey(w.typedKey) // review keys (reviewkeys.go)
	w.showStart()
	return w
}

// keepWindowSize makes the labels of Results and Inspect whose text changes
// at run time (run status, chosen folder) cut their text with an ellipsis:
// a label's full text is its minimum width, and a window narrower than its
// content's minimum grows by itself. (Labels in a Border's side slot are
// left alone: truncated there they would shrink to the ellipsis.)
func (w *Workstation) keepWindowSize() {
	for _, l := range []*widget.Label{w.results.status, w.inspect.dirLabel} {
		l.Truncation = fyne.TextTruncateEllipsis
	}
}

// Window returns the main window.
func (w *Workstation) Window() fyne.Window { return w.win }

// ShowAndRun shows the window and runs the application loop.
func (w *Workstation) ShowAndRun() { w.win.ShowAndRun() }

// Project returns the open project, or nil.
func (w *Workstation) Project() Project { return w.project }

// Close cancels background work, waits for it and closes the project.
func (w *Workstation) Close() {
	w.cancel()
	w.tasks.Wait()
	w.workers.Wait()
	if w.project != nil {
		if err := w.project.Close(); err != nil {
			slog.Error("close project", "path", w.project.Path(), "err", err)
		}
		w.project = nil
	}
}

// Wait blocks until every background task started so far has finished.
// Tests and the screenshot script use it.
func (w *Workstation) Wait() { w.tasks.Wait() }

// background runs f off the UI thread; f must use fyne.Do for UI updates.
func (w *Workstation) background(f func(ctx context.Context)) {
	w.tasks.Add(1)
	go func() {
		defer w.tasks.Done()
		f(w.ctx)
	}()
}

// ShowScreen switches to a screen by name (ScreenStart, ScreenData, ...).
func (w *Workstation) ShowScreen(name string) {
	if name == ScreenStart {
		w.showStart()
		return
	}
	if w.project == nil {
		return
	}
	for _, t := range w.tabs.Items {
		if t.Text == name {
			w.setBody(w.tabs)
			w.tabs.Select(t)
			w.onScreen(name)
			return
		}
	}
}

func (w *Workstation) currentScreen() string {
	if w.project == nil || len(w.body.Objects) == 0 || w.body.Objects[0] != w.tabs || w.tabs.Selected() == nil {
		return ScreenStart
	}
	return w.tabs.Selected().Text
}

// setBody shows o (the start screen or the tabs) under the header.
func (w *Workstation) setBody(o fyne.CanvasObject) {
	if len(w.body.Objects) == 1 && w.body.Objects[0] == o {
		return
	}
	w.body.Objects = []fyne.CanvasObject{o}
	w.body.Refresh()
}

func (w *Workstation) onScreen(name string) {
	w.header.refresh()
	switch name {
	case ScreenAnnotate:
		w.annotate.reload()
	case ScreenTrain:
		w.train.reload()
	case ScreenResults:
		w.results.reload()
	case ScreenInspect:
		w.inspect.reload()
	}
}

func (w *Workstation) showStart() {
	w.start.reload()
	w.setBody(w.start.content)
	w.updateTitle()
}

func (w *Workstation) updateTitle() {
	t := "DMAD Inspection Workstation"
	if w.project != nil {
		t = fmt.Sprintf("%s — %s (%s)", t, w.project.Name(), filepath.Base(w.project.Path()))
	}
	w.win.SetTitle(t)
	w.header.refresh()
}

// SetProject makes p the open project (closing the previous one) and shows
// the Data screen.
func (w *Workstation) SetProject(p Project) {
	w.live.stopAndWait() // it scores with the project being replaced
	if w.project != nil && w.project != p {
		if err := w.project.Close(); err != nil {
			slog.Error("close project", "path", w.project.Path(), "err", err)
		}
	}
	w.project = p
	w.recent.Add(p.Path())
	w.updateTitle()
	w.data.reload()
	w.results.clear()
	w.inspect.clear()
	w.setBody(w.tabs)
	w.tabs.SelectIndex(0)
}

// OpenProject opens the project file at path.
func (w *Workstation) OpenProject(path string) error {
	if w.deps.OpenProject == nil {
		return errors.New("opening projects is not available in this build")
	}
	p, err := w.deps.OpenProject(path)
	if err != nil {
		return fmt.Errorf("open project %s: %w", path, err)
	}
	w.SetProject(p)
	return nil
}

// CreateProject creates a project named name at path and opens it.
func (w *Workstation) CreateProject(path, name string) error {
	if w.deps.CreateProject == nil {
		return errors.New("creating projects is not available in this build")
	}
	p, err := w.deps.CreateProject(path, name)
	if err != nil {
		return fmt.Errorf("create project %s: %w", path, err)
	}
	w.SetProject(p)
	return nil
}

// showError shows err in a dialog with a hint saying what to do.
func (w *Workstation) showError(err error, hint string) {
	if err == nil {
		return
	}
	slog.Error("ui", "err", err)
	if bi, ok := w.backboneMissing(err); ok {
		w.offerBackboneImport(bi, err, nil)
		return
	}
	msg := widget.NewLabel(err.Error())
	msg.Wrapping = fyne.TextWrapWord
	box := container.NewVBox(msg)
	if hint != "" {
		h := widget.NewLabel("What to do: " + hint)
		h.Wrapping = fyne.TextWrapWord
		h.TextStyle = fyne.TextStyle{Italic: true}
		box.Add(h)
	}
	d := dialog.NewCustom("Something went wrong", "OK", box, w.win)
	d.Resize(fyne.NewSize(480, 200))
	d.Show()
}

// needProject shows an error and returns false when no project is open.
func (w *Workstation) needProject() bool {
	if w.project == nil {
		w.showError(errors.New("no project is open"), "create or open a project on the start screen")
		return false
	}
	return true
}

// prefsRecent keeps recent project paths in fyne Preferences.
type prefsRecent struct {
	prefs fyne.Preferences
}

const recentKey = "recent-projects"
const maxRecent = 8

// NewPrefsRecent returns a RecentStore kept in prefs.
func NewPrefsRecent(prefs fyne.Preferences) RecentStore { return prefsRecent{prefs} }

// Recent implements RecentStore.
func (r prefsRecent) Recent() []string { return r.prefs.StringList(recentKey) }

// Add implements RecentStore.
func (r prefsRecent) Add(path string) {
	list := slices.DeleteFunc(r.prefs.StringList(recentKey), func(s string) bool { return s == path })
	list = append([]string{path}, list...)
	if len(list) > maxRecent {
		list = list[:maxRecent]
	}
	r.prefs.SetStringList(recentKey, list)
}

// formatETA renders a duration for progress panels.
func formatETA(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return d.Round(time.Second).String()
}
