package ui

import (
	"errors"

	"fyne.io/fyne/v2/widget"
)

// Test hooks: the external tests (package ui_test, which may import
// ui/uitest) drive the views through these.

func (w *Workstation) ImportFolder(dir string) { w.data.importFolder(dir) }

func (w *Workstation) ImportPlain(dir string, scan FolderScan, cat string, split Split, label Label) {
	w.data.importPlain(dir, scan, cat, split, label)
}

func (w *Workstation) DataShown() int { return len(w.data.filtered) }

func (w *Workstation) DataFilter(cat, split, label, mask string) {
	w.data.catSel.SetSelected(cat)
	w.data.splitSel.SetSelected(split)
	w.data.labelSel.SetSelected(label)
	w.data.maskSel.SetSelected(mask)
}

// DataRemove removes an image as the Data view's Remove button does after
// its confirmation.
func (w *Workstation) DataRemove(id string) error {
	rm, ok := w.project.(ImageRemover)
	if !ok {
		return errors.New("project cannot remove images")
	}
	return w.data.remove(rm, id)
}

func (w *Workstation) ThumbDecodes() int { return w.data.thumbs.decodes() }

func (w *Workstation) DataGrid() *widget.GridWrap { return w.data.grid }

func (w *Workstation) AnnotateSelect(id string) { w.annotate.selectImage(id) }

func (w *Workstation) AnnotateEditor() *MaskEditor { return w.annotate.editor }

func (w *Workstation) AnnotateSave() error { return w.annotate.save() }

func (w *Workstation) AnnotateSeen() *widget.Check { return w.annotate.seen }

func (w *Workstation) TrainForm() (epochs *widget.Entry, start, cancel *widget.Button) {
	return w.train.epochs, w.train.start, w.train.cancelBtn
}

func (w *Workstation) TrainMemory() *widget.Entry { return w.train.memory }

func (w *Workstation) TrainFromScratch() *widget.Check { return w.train.scratch }

func (w *Workstation) TrainStatus() (stage, result string, losses int) {
	return w.train.stage.Text, w.train.result.Text, len(w.train.losses)
}

func (w *Workstation) TrainEvaluate() *widget.Button { return w.train.evaluate }

func (w *Workstation) ResultsThreshold() *widget.Slider { return w.results.browser.thr }

func (w *Workstation) ResultsCounts() (pass, fail int) { return w.results.browser.counts() }

func (w *Workstation) ResultsSummary() string { return w.results.browser.summary.Text }

func (w *Workstation) ResultsMetricRows() [][]string { return w.results.metricRows }

func (w *Workstation) ResultsCurvesDrawn() int {
	n := 0
	for _, c := range w.results.curves {
		if c.Image != nil {
			n++
		}
	}
	return n
}

func (w *Workstation) ResultsSelect(i int) { w.results.browser.list.Select(i) }

func (w *Workstation) ResultsViewerZoom() *ZoomImage { return w.results.browser.viewer }

func (w *Workstation) InspectScore(dir string) {
	w.inspect.setDir(dir)
	w.inspect.score()
}

func (w *Workstation) InspectCounts() (pass, fail int) { return w.inspect.browser.counts() }

func (w *Workstation) InspectThreshold() *widget.Slider { return w.inspect.browser.thr }

func (w *Workstation) InspectExport(dir string) { w.inspect.export(dir) }

func (w *Workstation) CurrentScreen() string { return w.currentScreen() }
