package ui

import (
	"cmp"
	"fmt"
	"github.com/dmad/workstation/core/review"
	"math"
	"slices"
	"sort"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
)

// metricExplanations say in one line each what the Metrics tab's numbers mean.
var metricExplanations = [...]string{
	"TP defects caught · FN defects missed · FP false alarms (good parts failed) · TN good parts passed — counted at the threshold above.",
	"Image AUROC: how well the scores separate good from defective parts over all thresholds (1 perfect, 0.5 chance).",
	"Image AP (average precision): how clean the list of failed parts stays as the threshold is lowered (1 = no false alarm ranks above a defect).",
	"F1max: the best balance of caught defects against false alarms over all thresholds.",
	"Pixel AUROC / AP: the same, pixel by pixel, for the heatmap against the drawn defect masks.",
	"PRO: how much of each defect region the heatmap covers, averaged over regions, at false-alarm rates up to 30% (1 perfect).",
}

// categoryHeader and typeHeader head the Metrics tab's two tables (two
// lines each, so the columns stay narrow); categoryWidths and typeWidths
// are their columns' widths.
var (
	categoryHeader = []string{"category", "images", "TP", "FP", "TN", "FN", "image\nAUROC", "image\nAP", "image\nF1max", "pixel\nAUROC", "pixel\nAP", "PRO"}
	categoryWidths = []float32{130, 80, 48, 48, 48, 48, 72, 72, 72, 72, 72, 72}
	typeHeader     = []string{"category", "defect type", "images", "caught", "missed", "lowest\nscore", "mean\nscore"}
	typeWidths     = []float32{130, 150, 80, 80, 80, 80, 80}
)

// confusion counts verdicts against labels at one threshold.
type confusion struct{ TP, FP, TN, FN int }

func (c *confusion) add(l Label, score, threshold float64) {
	fail := score >= threshold
	switch {
	case l == LabelDefect && fail:
		c.TP++
	case l == LabelDefect:
		c.FN++
	case l == LabelGood && fail:
		c.FP++
	case l == LabelGood:
		c.TN++
	}
}

// metricsPanel is Results' Metrics tab: a one-line explanation of every
// number, one row per category with the confusion counts at the threshold
// and the engine's metrics, and one row per defect type. It sizes to its
// rows instead of filling the tab with an empty table.
type metricsPanel struct {
	w       *Workstation
	content fyne.CanvasObject

	summary    *widget.Label
	categories *fyne.Container
	types      *fyne.Container
	typesCard  *widget.Card

	// catRows and typeRows are the tables' cells, header excluded (tests read them).
	catRows, typeRows [][]string
}

func newMetricsPanel(w *Workstation) *metricsPanel {
	m := &metricsPanel{w: w}
	m.summary = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	m.summary.Wrapping = fyne.TextWrapWord
	m.categories = container.NewVBox()
	m.types = container.NewVBox()
	help := container.NewVBox()
	for _, e := range metricExplanations {
		l := widget.NewLabel(e)
		l.Wrapping = fyne.TextWrapWord
		l.Importance = widget.LowImportance
		help.Add(l)
	}
	m.typesCard = widget.NewCard("By defect type", "", m.types)
	m.content = container.NewVScroll(container.NewVBox(
		m.summary,
		widget.NewCard("By category", "The last row is all categories: counts summed, metrics averaged.", m.categories),
		m.typesCard,
		widget.NewCard("What the numbers mean", "", help)))
	m.show(Run{}, review.Thresholds{})
	return m
}

// show fills the panel for run, each image decided at its category's
// threshold in th (as the gallery decides it).
func (m *metricsPanel) show(run Run, th review.Thresholds) {
	var types map[string]string
	if p := m.w.project; p != nil {
		types = defectTypes(p)
	}
	m.catRows = categoryRows(run, th)
	m.typeRows = defectTypeRows(run, th, types)
	fillTable(m.categories, categoryHeader, categoryWidths, m.catRows)
	fillTable(m.types, typeHeader, typeWidths, m.typeRows)
	if len(m.typeRows) == 0 {
		m.typesCard.SetSubTitle("No labelled defects in this run.")
	} else {
		m.typesCard.SetSubTitle("")
	}
	var all confusion
	for _, s := range run.Images {
		all.add(s.Label, s.Score, th.For(s.Category))
	}
	at := "At threshold " + formatThreshold(th.Global)
	if len(th.PerCategory) > 0 {
		at = "At the categories' thresholds"
	}
	switch {
	case len(run.Images) == 0:
		m.summary.SetText("No run selected: evaluate a model to see its metrics.")
	case all == confusion{}:
		m.summary.SetText(fmt.Sprintf("%d images, none labelled: no metrics.", len(run.Images)))
	default:
		m.summary.SetText(fmt.Sprintf("%s: %d of %d defects caught, %d missed; %d false alarms among %d good parts.",
			at, all.TP, all.TP+all.FN, all.FN, all.FP, all.FP+all.TN))
	}
}

// fillTable replaces box's rows with header and rows, each column widths[i]
// wide (text longer than that ends in an ellipsis); an "all" row is bold.
// Unlike widget.Table it is as tall as its rows, not as the tab.
func fillTable(box *fyne.Container, header []string, widths []float32, rows [][]string) {
	box.RemoveAll()
	row := func(cells []string, bold bool) *fyne.Container {
		r := container.NewHBox()
		for i, c := range cells {
			l := widget.NewLabelWithStyle(c, fyne.TextAlignLeading, fyne.TextStyle{Bold: bold})
			l.Truncation = fyne.TextTruncateEllipsis
			r.Add(container.NewGridWrap(fyne.NewSize(widths[i], l.MinSize().Height), l))
		}
		return r
	}
	box.Add(row(header, true))
	for _, r := range rows {
		box.Add(row(r, r[0] == "all"))
	}
}

// categoryRows returns one row per category (sorted) and an "all" row:
// image count, confusion counts at the category's threshold in th and the
// run's metrics.
func categoryRows(run Run, th review.Thresholds) [][]string {
	counts := map[string]*confusion{}
	images := map[string]int{}
	for _, s := range run.Images {
		if counts[s.Category] == nil {
			counts[s.Category] = &confusion{}
		}
		counts[s.Category].add(s.Label, s.Score, th.For(s.Category))
		images[s.Category]++
	}
	names := make([]string, 0, len(images))
	for c := range images {
		names = append(names, c)
	}
	for c := range run.PerCategory {
		if _, ok := images[c]; !ok {
			names = append(names, c)
		}
	}
	sort.Strings(names)
	var rows [][]string
	var total confusion
	var mean Metrics
	n := 0
	for _, c := range names {
		k := confusion{}
		if counts[c] != nil {
			k = *counts[c]
		}
		total.TP, total.FP, total.TN, total.FN = total.TP+k.TP, total.FP+k.FP, total.TN+k.TN, total.FN+k.FN
		row := []string{orDash(c), fmt.Sprint(images[c]), fmt.Sprint(k.TP), fmt.Sprint(k.FP), fmt.Sprint(k.TN), fmt.Sprint(k.FN)}
		x, ok := run.PerCategory[c]
		row = append(row, metricCells(x, ok)...)
		if ok {
			n++
			mean.ImageAUROC += x.ImageAUROC
			mean.ImageAP += x.ImageAP
			mean.ImageF1Max += x.ImageF1Max
			mean.PixelAUROC += x.PixelAUROC
			mean.PixelAP += x.PixelAP
			mean.PRO += x.PRO
		}
		rows = append(rows, row)
	}
	if len(rows) > 1 {
		if n > 0 {
			k := float64(n)
			mean = Metrics{ImageAUROC: mean.ImageAUROC / k, ImageAP: mean.ImageAP / k, ImageF1Max: mean.ImageF1Max / k,
				PixelAUROC: mean.PixelAUROC / k, PixelAP: mean.PixelAP / k, PRO: mean.PRO / k}
		}
		row := []string{"all", fmt.Sprint(len(run.Images)), fmt.Sprint(total.TP), fmt.Sprint(total.FP), fmt.Sprint(total.TN), fmt.Sprint(total.FN)}
		rows = append(rows, append(row, metricCells(mean, n > 0)...))
	}
	return rows
}

// metricCells formats the six metrics; "—" when unknown or undefined.
func metricCells(x Metrics, ok bool) []string {
	f := func(v float64) string {
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			return "—"
		}
		return fmt.Sprintf("%.3f", v)
	}
	return []string{f(x.ImageAUROC), f(x.ImageAP), f(x.ImageF1Max), f(x.PixelAUROC), f(x.PixelAP), f(x.PRO)}
}

// defectTypes maps the project's image IDs to their defect types.
func defectTypes(p Project) map[string]string {
	imgs, err := p.Images()
	if err != nil {
		return nil
	}
	out := make(map[string]string, len(imgs))
	for _, r := range imgs {
		if r.DefectType != "" {
			out[r.ID] = r.DefectType
		}
	}
	return out
}

// defectTypeRows returns one row per (category, defect type) of the run's
// labelled defects: count, caught and missed at the category's threshold
// in th, lowest and mean score.
func defectTypeRows(run Run, th review.Thresholds, types map[string]string) [][]string {
	type key struct{ cat, typ string }
	type agg struct {
		n, caught int
		low, sum  float64
	}
	groups := map[key]*agg{}
	for _, s := range run.Images {
		if s.Label != LabelDefect {
			continue
		}
		typ := defectType(s, types)
		if typ == "" {
			typ = "unnamed"
		}
		k := key{s.Category, typ}
		g := groups[k]
		if g == nil {
			g = &agg{low: math.Inf(1)}
			groups[k] = g
		}
		g.n++
		if s.Score >= th.For(s.Category) {
			g.caught++
		}
		g.low = math.Min(g.low, s.Score)
		g.sum += s.Score
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.cat != b.cat {
			return cmp.Compare(a.cat, b.cat)
		}
		return cmp.Compare(a.typ, b.typ)
	})
	rows := make([][]string, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		rows = append(rows, []string{orDash(k.cat), k.typ, fmt.Sprint(g.n), fmt.Sprint(g.caught), fmt.Sprint(g.n - g.caught),
			fmt.Sprintf("%.4f", g.low), fmt.Sprintf("%.4f", g.sum/float64(g.n))})
	}
	return rows
}

// installMetrics puts the metrics panel into Results' Metrics tab and keeps
// it in step with the run and the threshold the gallery shows.
func (w *Workstation) installMetrics() {
	w.metrics = newMetricsPanel(w)
	r := w.results
	for _, t := range r.tabs.Items {
		if t.Text == "Metrics" {
			t.Content = w.metrics.content
		}
	}
	r.tabs.Refresh()
	refresh := func() { w.metrics.show(r.browser.run, r.browser.th) }
	r.browser.onDecisions = refresh
	onRun := r.runSel.OnChanged
	r.runSel.OnChanged = func(s string) {
		if onRun != nil {
			onRun(s)
		}
		refresh()
	}
	onTab := r.tabs.OnSelected
	r.tabs.OnSelected = func(t *container.TabItem) {
		if onTab != nil {
			onTab(t)
		}
		if t.Text == "Metrics" {
			refresh()
		}
	}
}
