package ui

import (
	"image"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/widget"
)

// HeaderText returns the header's project and model lines.
func (w *Workstation) HeaderText() (project, model string) {
	return w.header.project.Text, w.header.model.Text
}

// HeaderHome returns the header's Home button.
func (w *Workstation) HeaderHome() *widget.Button { return w.header.home }

// StartResume returns the start screen's "Back to project" button.
func (w *Workstation) StartResume() *widget.Button { return w.start.resume }

// MetricsRows returns the Metrics tab's category and defect-type rows.
func (w *Workstation) MetricsRows() (categories, types [][]string) {
	return w.metrics.catRows, w.metrics.typeRows
}

// MetricsSummary returns the Metrics tab's headline.
func (w *Workstation) MetricsSummary() string { return w.metrics.summary.Text }

// ShowResultsTab selects Results' tab by name (Gallery, Metrics, Curves).
func (w *Workstation) ShowResultsTab(name string) {
	for i, t := range w.results.tabs.Items {
		if t.Text == name {
			w.results.tabs.SelectIndex(i)
		}
	}
}

// TrainProgressLabels returns the Train screen's progress labels.
func (w *Workstation) TrainProgressLabels() []*widget.Label {
	return []*widget.Label{w.train.stage, w.train.epoch, w.train.eta}
}

// ObserveTraining shows one progress event on the Train screen.
func (w *Workstation) ObserveTraining(p Progress) { w.train.observe(p) }

// DataShownImage returns what the Data viewer shows (nil before a selection).
func (w *Workstation) DataShownImage() *ZoomImage { return w.data.viewer }

// DataPreview returns the Data viewer's image and mask as loaded, and
// whether Show mask is on.
func (w *Workstation) DataPreview() (img image.Image, mask *image.Gray, show *widget.Check) {
	return w.data.shown, w.data.shownMask, w.data.showMask
}

// TrainContent returns the Train screen's content.
func (w *Workstation) TrainContent() fyne.CanvasObject { return w.train.content }
