package ui

import (
	"fmt"
	"path/filepath"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// header is the bar above every screen: a Home button back to the start
// screen, the open project's name and the model version Results, Inspect
// and Live use (the newest one), so neither is ever a guess.
type header struct {
	w       *Workstation
	content fyne.CanvasObject
	home    *widget.Button
	project *widget.Label
	model   *widget.Label
}

func newHeader(w *Workstation) *header {
	h := &header{w: w}
	h.home = widget.NewButtonWithIcon("Home", theme.HomeIcon(), func() { w.ShowScreen(ScreenStart) })
	h.project = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	h.model = widget.NewLabel("")
	// Long names are cut with an ellipsis instead of widening the window.
	h.project.Truncation = fyne.TextTruncateEllipsis
	h.model.Truncation = fyne.TextTruncateEllipsis
	h.content = container.NewVBox(
		container.NewBorder(nil, nil, h.home, nil, container.NewGridWithColumns(2, h.project, h.model)),
		widget.NewSeparator())
	h.refresh()
	return h
}

// refresh shows the open project and its newest model.
func (h *header) refresh() {
	p := h.w.project
	if p == nil {
		h.project.SetText("No project open")
		h.model.SetText("")
		return
	}
	h.project.SetText(fmt.Sprintf("Project: %s (%s)", p.Name(), filepath.Base(p.Path())))
	h.model.SetText(modelLine(p))
}

// modelLine names the model the screens use: the newest version.
func modelLine(p Project) string {
	models, err := p.Models()
	switch {
	case err != nil:
		return "Model: cannot list models (" + err.Error() + ")"
	case len(models) == 0:
		return "Model: none trained yet"
	}
	m := models[len(models)-1]
	s := fmt.Sprintf("Model: v%d", m.Version)
	if !m.Created.IsZero() {
		s += " · trained " + m.Created.Format("2006-01-02 15:04")
	}
	if m.Regime != "" {
		s += " · " + string(m.Regime)
	}
	return s
}
