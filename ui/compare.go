package ui

import (
	"fmt"
	"slices"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/widget"

	"github.com/dmad/workstation/core/review"
)

// compareView compares two runs — typically two model versions evaluated
// on the same test split — side by side: metrics and confusion counts per
// category at each model's thresholds, and the images whose verdict
// changed.
type compareView struct {
	w       *Workstation
	content fyne.CanvasObject

	runs       []Run
	selA, selB *widget.Select
	rows       [][]string
	table      *widget.Table
	summary    *widget.Label
	tableBox   *fyne.Container
	changed    []review.Change
	list       *widget.List
	// result is the last comparison (tests read it).
	result review.Comparison
}

var compareHeader = []string{"category", "AUROC A", "AUROC B", "fail A", "fail B", "missed A", "missed B",
	"false alarm A", "false alarm B", "threshold A", "threshold B"}

func newCompareView(w *Workstation) *compareView {
	v := &compareView{w: w}
	v.selA = widget.NewSelect(nil, func(string) { v.compare() })
	v.selB = widget.NewSelect(nil, func(string) { v.compare() })
	v.table = widget.NewTable(func() (int, int) { return len(v.rows) + 1, len(compareHeader) },
		func() fyne.CanvasObject { return widget.NewLabel("false alarms A 000") },
		func(id widget.TableCellID, o fyne.CanvasObject) {
			l := o.(*widget.Label)
			l.TextStyle.Bold = id.Row == 0 || id.Col == 0
			if id.Row == 0 {
				l.SetText(compareHeader[id.Col])
				return
			}
			l.SetText(v.rows[id.Row-1][id.Col])
		})
	for c := range compareHeader {
		v.table.SetColumnWidth(c, 118)
	}
	v.table.SetColumnWidth(0, 150)
	v.summary = widget.NewLabel("Choose two runs on the same images (for example two model versions evaluated on the test split).")
	v.summary.Wrapping = fyne.TextWrapWord
	v.list = widget.NewList(func() int { return len(v.changed) },
		func() fyne.CanvasObject {
			l := widget.NewLabel("category/type/file.png (defect): A FAIL 0.7100 at 0.6600 → B PASS")
			l.Truncation = fyne.TextTruncateEllipsis
			return l
		},
		func(i widget.ListItemID, o fyne.CanvasObject) { o.(*widget.Label).SetText(changeText(v.changed[i])) })
	top := container.NewHBox(widget.NewLabel("A"), container.NewGridWrap(fyne.NewSize(300, 36), v.selA),
		widget.NewLabel("B"), container.NewGridWrap(fyne.NewSize(300, 36), v.selB))
	v.tableBox = container.NewGridWrap(v.tableSize(), v.table)
	v.content = container.NewBorder(container.NewVBox(top, container.NewHScroll(v.tableBox), v.summary), nil, nil, nil, v.list)
	return v
}

// tableSize fits the table to its rows (at most 8 shown; it scrolls).
func (v *compareView) tableSize() fyne.Size {
	rows := min(len(v.rows), 8) + 1
	return fyne.NewSize(150+118*float32(len(compareHeader)-1)+8, float32(rows)*40+8)
}

func changeText(c review.Change) string {
	how := ""
	switch {
	case c.Better:
		how = " — B is right"
	case c.Worse:
		how = " — A was right"
	}
	label := ""
	if c.Label != "" {
		label = " (" + c.Label + ")"
	}
	return fmt.Sprintf("%s%s: A %s %.4f at %s → B %s %.4f at %s%s", displayName(ScoredImage{Path: c.Path, Category: c.Category}), label,
		strings.ToUpper(c.VerdictA), c.ScoreA, formatThreshold(c.ThresholdA), strings.ToUpper(c.VerdictB), c.ScoreB, formatThreshold(c.ThresholdB), how)
}

// setRuns offers runs for comparison: the two newest by default.
func (v *compareView) setRuns(runs []Run) {
	v.runs = runs
	opts := make([]string, len(runs))
	for i, r := range runs {
		opts[i] = fmt.Sprintf("%d. %s — model %s", i+1, r.Name, orDash(r.ModelID))
	}
	v.selA.Options, v.selB.Options = opts, slices.Clone(opts)
	v.selA.ClearSelected()
	v.selB.ClearSelected()
	v.rows, v.changed, v.result = nil, nil, review.Comparison{}
	if len(runs) >= 2 {
		v.selA.SetSelectedIndex(len(runs) - 2)
		v.selB.SetSelectedIndex(len(runs) - 1)
	}
	v.table.Refresh()
	v.list.Refresh()
}

// thresholds are the thresholds run was decided with.
func (v *compareView) thresholds(run Run) review.Thresholds {
	if r, ok := v.w.project.(Reviewer); ok && run.ModelID != "" {
		if t, err := r.Thresholds(run.ModelID); err == nil {
			return t
		}
	}
	return review.Thresholds{Global: run.Threshold}
}

func runItems(run Run) []review.Item {
	out := make([]review.Item, len(run.Images))
	for i, s := range run.Images {
		out[i] = review.Item{Key: OverrideKey(s), Path: s.Path, Category: s.Category, Label: string(s.Label), Score: s.Score}
	}
	return out
}

// compare compares the chosen runs.
func (v *compareView) compare() {
	a, b := v.selA.SelectedIndex(), v.selB.SelectedIndex()
	if a < 0 || b < 0 || a >= len(v.runs) || b >= len(v.runs) {
		return
	}
	ra, rb := v.runs[a], v.runs[b]
	ta, tb := v.thresholds(ra), v.thresholds(rb)
	cmp := review.Compare(runItems(ra), runItems(rb), ta, tb)
	v.result = cmp
	v.changed = cmp.Changed
	v.rows = nil
	f := func(m map[string]Metrics, c string) string {
		if x, ok := m[c]; ok {
			return fmt.Sprintf("%.3f", x.ImageAUROC)
		}
		return "—"
	}
	for _, c := range append(review.Categories(cmp.CountsA), "") {
		ca, cb := cmp.CountsA[c], cmp.CountsB[c]
		name, aurocA, aurocB, thrA, thrB := c, f(ra.PerCategory, c), f(rb.PerCategory, c), formatThreshold(ta.For(c)), formatThreshold(tb.For(c))
		if c == "" {
			name, aurocA, aurocB, thrA, thrB = "all", meanAUROC(ra.PerCategory), meanAUROC(rb.PerCategory), "", ""
		}
		v.rows = append(v.rows, []string{name, aurocA, aurocB, fmt.Sprint(ca.Fail), fmt.Sprint(cb.Fail),
			fmt.Sprint(ca.Misses), fmt.Sprint(cb.Misses), fmt.Sprint(ca.FalseAlarms), fmt.Sprint(cb.FalseAlarms), thrA, thrB})
	}
	better, worse := 0, 0
	for _, c := range cmp.Changed {
		if c.Better {
			better++
		}
		if c.Worse {
			worse++
		}
	}
	txt := fmt.Sprintf("%d of %d common images change verdict from A to B: %d now right, %d now wrong.", len(cmp.Changed), cmp.Common, better, worse)
	if cmp.OnlyA+cmp.OnlyB > 0 {
		txt += fmt.Sprintf(" %d images only in A and %d only in B are not compared.", cmp.OnlyA, cmp.OnlyB)
	}
	if cmp.Common == 0 {
		txt = "The two runs have no image in common: compare runs on the same images."
	}
	v.summary.SetText(txt)
	v.tableBox.Layout = layout.NewGridWrapLayout(v.tableSize())
	v.tableBox.Refresh()
	v.table.Refresh()
	v.list.Refresh()
}

func meanAUROC(m map[string]Metrics) string {
	if len(m) == 0 {
		return "—"
	}
	var s float64
	for _, x := range m {
		s += x.ImageAUROC
	}
	return fmt.Sprintf("%.3f", s/float64(len(m)))
}
