// Package report writes an inspection report a stakeholder can be handed
// without editing: scores.csv and summary.json (core/inspection), one
// overlay PNG per image with its score, verdict and a colour legend drawn
// on it, ROC/PR curve PNGs, and report.html and report.pdf with the same
// header (project, model, backbone, thresholds, date, operator, counts),
// per-category and per-defect-type tables, metrics and the overlays of the
// fails and misses. It imports no GUI toolkit.
package report

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dmad/workstation"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/core/metrics"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/ui/internal/curve"
	"github.com/dmad/workstation/ui/internal/plots"
)

// Override is a reviewer's verdict on one image, replacing the model's.
type Override struct {
	// Verdict is inspection.Pass or inspection.Fail.
	Verdict string
	// By is who decided, At when.
	By string
	At time.Time
}

// Item is one scored image of the report.
type Item struct {
	Path     string
	Category string
	// DefectType is the image's defect type when known (the MVTec test
	// sub-folder; "good" for normal images).
	DefectType string
	Score      float64
	// Label is "good", "defect" or "" when unknown.
	Label      string
	Map        []float32
	MapW, MapH int
	// Overlay is an overlay already written, relative to the output folder
	// (a merge of shard outputs); Write draws one from Map otherwise.
	Overlay string
	// Override is a reviewer's verdict (nil: none).
	Override *Override
}

// Metrics of one category, as computed by the engine (its own type).
type Metrics = metrics.Summary

// Report is what gets written.
type Report struct {
	Title   string
	Created time.Time
	// Project is the project's name; Input the inspected folder.
	Project, Input string
	// ModelVersion is the project's model version (0: not known).
	ModelVersion   int
	Method, Regime string
	Backbone       string
	// Operator is who ran the inspection.
	Operator string
	// Threshold is the model's global threshold; CategoryThresholds those
	// of categories with their own (see ThresholdOf).
	Threshold          float64
	CategoryThresholds map[string]float64
	Items              []Item
	// PerCategory metrics; empty for an unlabelled batch.
	PerCategory map[string]Metrics
	// PixelReason, when set, is why the pixel metrics are undefined (a
	// merge has no anomaly maps).
	PixelReason string
	// Shard ("i/n") and MergedFrom describe sharded runs.
	Shard      string
	MergedFrom []string
	// LoadImage decodes an item's image for its overlay; nil skips overlays.
	LoadImage func(it Item) (image.Image, error)
	// LoadMask returns an item's ground-truth mask (nil, nil when it has
	// none); its contour is drawn on the overlay. nil skips contours.
	LoadMask func(it Item) (*image.Gray, error)
	// Opacity of the heatmap in the overlays (default 0.5).
	Opacity float64
	// MapLo..MapHi is the model's anomaly-map range: the overlays' colour
	// ramp ends at MapHi (at least 1.25× the threshold), so that shards
	// and runs of one model agree. When empty, the ramp ends at the items'
	// highest score.
	MapLo, MapHi float64
	// HeatmapTop, when set, is the end of the ramp in threshold units
	// (summary.json's heatmap_top; a merge takes it from the shards).
	HeatmapTop float64
}

// ThresholdOf is the decision threshold of category.
func (r *Report) ThresholdOf(category string) float64 {
	if t, ok := r.CategoryThresholds[category]; ok {
		return t
	}
	return r.Threshold
}

// Files written into the output folder.
const (
	CSVName      = inspection.ScoresName
	SummaryName  = inspection.SummaryName
	HTMLName     = "report.html"
	PDFName      = "report.pdf"
	ROCName      = "roc.png"
	PRName       = "pr.png"
	LegendName   = "legend.png"
	OverlayDir   = inspection.OverlayDir
	overlaySufix = "_overlay.png"
)

// Decision is "fail" when score is at or above the threshold, else "pass".
func Decision(score, threshold float64) string { return inspection.Decision(score, threshold) }

// Write writes the report into dir (created if needed): overlays (when
// LoadImage is set), scores.csv, the curves, report.html, report.pdf and,
// last, summary.json. Items are numbered from 1 in (category, path) order. report,
// when not nil, gets a progress.Report event after each overlay.
func Write(ctx context.Context, dir string, r Report, report progress.Func) error {
	if err := os.MkdirAll(filepath.Join(dir, OverlayDir), 0o755); err != nil {
		return fmt.Errorf("report: create %s: %w", dir, err)
	}
	if r.Opacity == 0 {
		r.Opacity = 0.5
	}
	r.Items = append([]Item(nil), r.Items...)
	sort.SliceStable(r.Items, func(a, b int) bool {
		if r.Items[a].Category != r.Items[b].Category {
			return r.Items[a].Category < r.Items[b].Category
		}
		return r.Items[a].Path < r.Items[b].Path
	})
	r.HeatmapTop = r.heatmapTop()
	if r.LoadImage != nil {
		fonts, err := newFaces()
		if err != nil {
			return err
		}
		for i := range r.Items {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("report: %w", err)
			}
			it := &r.Items[i]
			img, err := r.LoadImage(*it)
			if err != nil {
				return fmt.Errorf("report: load %s: %w", it.Path, err)
			}
			var mask *image.Gray
			if r.LoadMask != nil {
				if mask, err = r.LoadMask(*it); err != nil {
					return fmt.Errorf("report: mask of %s: %w", it.Path, err)
				}
			}
			ov := overlay(fonts, img, mask, *it, i+1, r.ThresholdOf(it.Category), r.HeatmapTop, r.Opacity)
			name := filepath.ToSlash(filepath.Join(OverlayDir, inspection.OverlayName(i+1, it.Path)))
			if err := writePNG(filepath.Join(dir, filepath.FromSlash(name)), ov); err != nil {
				return err
			}
			it.Overlay = name
			report.Send(progress.Event{Stage: progress.Report, Done: i + 1, Total: len(r.Items)})
		}
	}
	rows := r.Rows()
	if err := inspection.WriteScores(filepath.Join(dir, CSVName), rows); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := WriteDocuments(dir, r); err != nil {
		return err
	}
	// summary.json last: its presence says the output is complete (the
	// Kubernetes merge job waits for each shard's).
	if err := inspection.WriteSummary(dir, r.Summary(rows)); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// WriteDocuments writes the curves, the legend, report.html and report.pdf
// of r into dir, using the overlays the items name (Item.Overlay): what a
// merge of shard outputs adds to the merged scores.csv and summary.json.
func WriteDocuments(dir string, r Report) error {
	rows := r.Rows()
	d := newDoc(r, rows)
	if rocImg, prImg, err := Curves(r.Items, 480, 360); err != nil {
		return fmt.Errorf("report: curves: %w", err)
	} else if rocImg != nil {
		if d.roc, err = encodePNG(rocImg); err != nil {
			return err
		}
		if d.pr, err = encodePNG(prImg); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, ROCName), d.roc, 0o644); err != nil {
			return fmt.Errorf("report: write %s: %w", ROCName, err)
		}
		if err := os.WriteFile(filepath.Join(dir, PRName), d.pr, 0o644); err != nil {
			return fmt.Errorf("report: write %s: %w", PRName, err)
		}
	}
	fonts, err := newFaces()
	if err != nil {
		return err
	}
	if d.legend, err = encodePNG(legendImage(fonts, 640, r.heatmapTop())); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, LegendName), d.legend, 0o644); err != nil {
		return fmt.Errorf("report: write %s: %w", LegendName, err)
	}
	if err := writeHTML(filepath.Join(dir, HTMLName), d); err != nil {
		return err
	}
	return writePDF(filepath.Join(dir, PDFName), dir, d)
}

// Rows are the report's rows as scores.csv holds them, numbered from 1 in
// the order of r.Items.
func (r *Report) Rows() []inspection.Row {
	rows := make([]inspection.Row, len(r.Items))
	for i, it := range r.Items {
		thr := r.ThresholdOf(it.Category)
		row := inspection.Row{Item: strconv.Itoa(i + 1), Path: it.Path, Category: it.Category, DefectType: it.DefectType,
			Label: it.Label, Score: inspection.FormatFloat(it.Score), Threshold: inspection.FormatFloat(thr),
			Decision: inspection.Decision(it.Score, thr), Overlay: it.Overlay}
		if o := it.Override; o != nil {
			row.Override, row.OverrideBy = o.Verdict, o.By
			if !o.At.IsZero() {
				row.OverrideAt = o.At.Format(time.RFC3339)
			}
		}
		rows[i] = row
	}
	return rows
}

// Summary is summary.json of the report with rows (see Rows).
func (r *Report) Summary(rows []inspection.Row) inspection.Summary {
	s := inspection.Summary{Title: r.Title, Project: r.Project, Input: r.Input, ModelVersion: r.ModelVersion,
		ModelMethod: r.Method, ModelRegime: r.Regime, Backbone: r.Backbone, Threshold: r.Threshold,
		CategoryThresholds: r.CategoryThresholds, Created: r.Created, Operator: r.Operator,
		WorkstationVersion: workstation.Version(), Shard: r.Shard, MergedFrom: r.MergedFrom, HeatmapTop: r.heatmapTop()}
	s.SetCounts(rows)
	if len(r.PerCategory) > 0 {
		s.PerCategory = map[string]inspection.Metrics{}
		for c, m := range r.PerCategory {
			s.PerCategory[c] = inspection.Metrics{Summary: m, PixelReason: r.PixelReason}
		}
	}
	return s
}

// anyNaNPixel reports whether a category's pixel metrics are undefined.
func anyNaNPixel(per map[string]inspection.Metrics) bool {
	for _, m := range per {
		if math.IsNaN(m.PixelAUROC) || math.IsNaN(m.PRO) {
			return true
		}
	}
	return false
}

// FromOutput is the report of an inspection output folder's summary and
// rows (a merge of shard outputs): the items keep their overlays and the
// summary's metrics; there are no anomaly maps to draw.
func FromOutput(s inspection.Summary, rows []inspection.Row) (Report, error) {
	r := Report{Title: s.Title, Created: s.Created, Project: s.Project, Input: s.Input, ModelVersion: s.ModelVersion,
		Method: s.ModelMethod, Regime: s.ModelRegime, Backbone: s.Backbone, Operator: s.Operator,
		Threshold: s.Threshold, CategoryThresholds: s.CategoryThresholds, Shard: s.Shard, MergedFrom: s.MergedFrom,
		HeatmapTop: s.HeatmapTop}
	for _, row := range rows {
		score, err := strconv.ParseFloat(row.Score, 64)
		if err != nil {
			return Report{}, fmt.Errorf("report: score %q of %s: %w", row.Score, row.Path, err)
		}
		it := Item{Path: row.Path, Category: row.Category, DefectType: row.DefectType, Score: score, Label: row.Label, Overlay: row.Overlay}
		if row.Override != "" {
			o := &Override{Verdict: row.Override, By: row.OverrideBy}
			if row.OverrideAt != "" {
				if o.At, err = time.Parse(time.RFC3339, row.OverrideAt); err != nil {
					return Report{}, fmt.Errorf("report: override time %q of %s: %w", row.OverrideAt, row.Path, err)
				}
			}
			it.Override = o
		}
		r.Items = append(r.Items, it)
	}
	if len(s.PerCategory) > 0 {
		r.PerCategory = map[string]Metrics{}
		for c, m := range s.PerCategory {
			r.PerCategory[c] = m.Summary
			if m.PixelReason != "" {
				r.PixelReason = m.PixelReason
			}
		}
		if r.PixelReason == "" && len(s.MergedFrom) > 0 && anyNaNPixel(s.PerCategory) {
			r.PixelReason = inspection.ReasonNoMaps
		}
	}
	return r, nil
}

// heatmapTop is where the overlays' colour ramp ends, in threshold units:
// HeatmapTop when set; else the model's MapHi over its threshold; else the
// items' highest score over their category's threshold; at least 1.25.
func (r *Report) heatmapTop() float64 {
	if r.HeatmapTop > 0 {
		return r.HeatmapTop
	}
	top := 1.25
	if r.MapHi > r.MapLo {
		return math.Max(top, heatmap.Normalise(r.MapHi, r.Threshold))
	}
	for _, it := range r.Items {
		if n := heatmap.Normalise(it.Score, r.ThresholdOf(it.Category)); n > top && !math.IsInf(n, 0) {
			top = n
		}
	}
	return top
}

// Curves draws the image-level ROC and PR curves, one series per category
// with both classes. It returns nils when no category has both classes.
func Curves(items []Item, w, h int) (roc, pr image.Image, err error) {
	byCat := map[string][]Item{}
	for _, it := range items {
		if it.Label != "" {
			byCat[it.Category] = append(byCat[it.Category], it)
		}
	}
	cats := make([]string, 0, len(byCat))
	for c := range byCat {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	var rocS, prS []plots.Series
	for _, c := range cats {
		scores := make([]float64, len(byCat[c]))
		labels := make([]bool, len(byCat[c]))
		for i, it := range byCat[c] {
			scores[i], labels[i] = it.Score, it.Label == inspection.LabelDefect
		}
		fpr, tpr, _ := curve.ROC(scores, labels)
		if fpr == nil {
			continue
		}
		rec, prec := curve.PR(scores, labels)
		rocS = append(rocS, plots.Series{Name: c, X: fpr, Y: tpr})
		prS = append(prS, plots.Series{Name: c, X: rec, Y: prec})
	}
	if len(rocS) == 0 {
		return nil, nil, nil
	}
	if roc, err = plots.Draw(plots.Light(), "Image ROC", "false-positive rate", "true-positive rate", rocS, w, h, true, true); err != nil {
		return nil, nil, err
	}
	if pr, err = plots.Draw(plots.Light(), "Image precision-recall", "recall", "precision", prS, w, h, true, false); err != nil {
		return nil, nil, err
	}
	return roc, pr, nil
}

func writePNG(path string, img image.Image) error {
	b, err := encodePNG(img)
	if err != nil {
		return fmt.Errorf("report: encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}

func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	// Fastest deflate: overlays are photos, where the best level saves
	// little and costs most of a report's time.
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("report: encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// metricText formats a metric for the reports: three decimals, or "n/a"
// for one that is undefined (NaN: a test set of one class), as summary.json
// writes null.
func metricText(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", v)
}

// relPath is path relative to the input folder when it lies inside it.
func relPath(input, path string) string {
	if input == "" {
		return filepath.ToSlash(path)
	}
	rel, err := filepath.Rel(input, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return filepath.ToSlash(path)
	}
	return filepath.ToSlash(rel)
}
