package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/dmad/workstation"
	"github.com/dmad/workstation/core/inspection"
)

// doc is what report.html and report.pdf show, worded once for both.
type doc struct {
	Title  string
	Header [][2]string
	Sum    inspection.Summary
	// Counts is the one-line summary of the verdicts.
	Counts  string
	Metrics []namedMetric
	// PixelNote explains n/a pixel metrics when they are undefined for one
	// reason (a merge).
	PixelNote string
	Lines     []line
	// Attention are the fails and misses, highest score first.
	Attention       []line
	roc, pr, legend []byte
	Generator       string
}

type namedMetric struct {
	Name string
	M    Metrics
}

// line is one image as the reports show it.
type line struct {
	N                                    int
	Path, Category, DefectType, Label    string
	Score, Threshold                     string
	score                                float64
	Decision, Verdict, Override, Overlay string
	Miss, FalseAlarm                     bool
}

// Outcome is the line's verdict in words, with what it was against the label.
func (l line) Outcome() string {
	switch {
	case l.Miss:
		return "miss"
	case l.FalseAlarm:
		return "false alarm"
	}
	return ""
}

func newDoc(r Report, rows []inspection.Row) *doc {
	d := &doc{Title: r.Title, Sum: r.Summary(rows), Generator: workstation.NameVersion(), PixelNote: r.PixelReason}
	if d.Title == "" {
		d.Title = "Inspection report"
	}
	s := d.Sum
	model := "—"
	if s.ModelVersion > 0 {
		model = "version " + strconv.Itoa(s.ModelVersion)
	}
	if s.ModelMethod != "" {
		model += " · " + s.ModelMethod
	}
	if s.ModelRegime != "" {
		model += " · " + s.ModelRegime
	}
	thr := fmt.Sprintf("%.4f", s.Threshold)
	// Name the categories' own thresholds when one differs from the
	// global threshold (a model stores one per category, usually equal).
	var own []string
	differs := false
	for _, c := range s.Categories {
		if t, ok := s.CategoryThresholds[c.Category]; ok {
			own = append(own, fmt.Sprintf("%s %.4f", c.Category, t))
			differs = differs || fmt.Sprintf("%.4f", t) != thr
		}
	}
	if differs {
		thr = strings.Join(own, ", ") + " (model's global threshold " + thr + ")"
	} else if len(own) > 0 {
		thr += " (every category)"
	}
	created := "—"
	if !s.Created.IsZero() {
		created = s.Created.Format("2006-01-02 15:04:05 MST")
	}
	d.Header = [][2]string{
		{"Project", orDash(s.Project)},
		{"Inspected folder", orDash(s.Input)},
		{"Model", model},
		{"Backbone", orDash(s.Backbone)},
		{"Threshold", thr},
		{"Date", created},
		{"Operator", orDash(s.Operator)},
		{"Software", d.Generator},
	}
	if s.Shard != "" {
		d.Header = append(d.Header, [2]string{"Shard", s.Shard})
	}
	if len(s.MergedFrom) > 0 {
		d.Header = append(d.Header, [2]string{"Merged from", fmt.Sprintf("shard outputs: %d", len(s.MergedFrom))})
	}
	d.Counts = fmt.Sprintf("%d images: %d pass, %d fail", s.Images, s.Pass, s.Fail)
	if s.Misses != nil {
		d.Counts += fmt.Sprintf("; %d missed defects, %d false alarms (labels known)", *s.Misses, *s.FalseAlarms)
	}
	if s.Overridden > 0 {
		d.Counts += fmt.Sprintf("; verdicts changed by a reviewer: %d", s.Overridden)
	}
	for name, m := range r.PerCategory {
		d.Metrics = append(d.Metrics, namedMetric{name, m})
	}
	sort.Slice(d.Metrics, func(a, b int) bool { return d.Metrics[a].Name < d.Metrics[b].Name })
	for i, row := range rows {
		l := line{N: i + 1, Path: relPath(r.Input, row.Path), Category: row.Category, DefectType: row.DefectType,
			Label: row.Label, Score: fmt.Sprintf("%.4f", r.Items[i].Score), Threshold: fmt.Sprintf("%.4f", r.ThresholdOf(row.Category)),
			score: r.Items[i].Score, Decision: row.Decision, Verdict: row.Final(), Overlay: row.Overlay}
		l.Miss = row.Label == inspection.LabelDefect && l.Verdict == inspection.Pass
		l.FalseAlarm = row.Label == inspection.LabelGood && l.Verdict == inspection.Fail
		if o := r.Items[i].Override; o != nil {
			l.Override = o.Verdict
			if o.By != "" {
				l.Override += " by " + o.By
			}
			if !o.At.IsZero() {
				l.Override += " " + o.At.Format("2006-01-02 15:04")
			}
		}
		d.Lines = append(d.Lines, l)
		if l.Verdict == inspection.Fail || l.Miss {
			d.Attention = append(d.Attention, l)
		}
	}
	sort.SliceStable(d.Attention, func(a, b int) bool { return d.Attention[a].score > d.Attention[b].score })
	return d
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// countText is a nullable count: "—" when labels are unknown.
func countText(n *int) string {
	if n == nil {
		return "—"
	}
	return strconv.Itoa(*n)
}

// typeResult words a defect type's row: how many were caught (a defect
// type) or how many passed (good images).
func typeResult(t inspection.DefectTypeCounts) string {
	if t.Images == 0 {
		return ""
	}
	if t.DefectType == inspection.LabelGood {
		return fmt.Sprintf("%d of %d passed (%.0f%%)", t.Pass, t.Images, 100*float64(t.Pass)/float64(t.Images))
	}
	return fmt.Sprintf("%d of %d caught (%.0f%%)", t.Fail, t.Images, 100*float64(t.Fail)/float64(t.Images))
}
