// Package inspection describes the output folder of an inspection
// (`workstation inspect --out`, the desktop application's export,
// `workstation report merge`): the rows of scores.csv, summary.json, and the
// per-category and per-defect-type counts both are built from, so that every
// writer and reader of that folder agrees. It imports no GUI toolkit.
package inspection

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dmad/workstation/core/metrics"
)

// Files of an inspection output folder.
const (
	ScoresName  = "scores.csv"
	SummaryName = "summary.json"
	OverlayDir  = "overlays"
)

// Verdicts, as scores.csv and the reports write them.
const (
	Pass = "pass"
	Fail = "fail"
)

// Labels of scored images ("" when unknown).
const (
	LabelGood   = "good"
	LabelDefect = "defect"
)

// Decision is Fail when score is at or above threshold, else Pass.
func Decision(score, threshold float64) string {
	if score >= threshold {
		return Fail
	}
	return Pass
}

// ScoresHeader is the header of scores.csv, snake_case like summary.json.
var ScoresHeader = []string{"item", "path", "category", "defect_type", "label", "score", "threshold", "decision",
	"overlay", "override", "override_by", "override_at"}

// Row is one line of scores.csv, kept as text so that a merge copies the
// shards' values byte for byte.
type Row struct {
	// Item is the row's number, from 1, in the output's order (category,
	// then path); overlay file names start with it.
	Item string
	Path string
	// Category and DefectType (the MVTec test sub-folder, "good" for normal
	// images, "" when unknown).
	Category, DefectType string
	// Label is LabelGood, LabelDefect or "" (unknown).
	Label string
	// Score and the Threshold of the image's category, as formatted by
	// [FormatFloat].
	Score, Threshold string
	// Decision is the model's verdict: Pass or Fail.
	Decision string
	// Overlay is the overlay PNG relative to the output folder ("" when none).
	Overlay string
	// Override is a reviewer's verdict (Pass or Fail; "" when none), with
	// who made it and when (RFC 3339).
	Override, OverrideBy, OverrideAt string
}

// FormatFloat formats a score or threshold the way scores.csv holds it.
func FormatFloat(v float64) string { return fmt.Sprintf("%.8g", v) }

// Final is the verdict that counts: the reviewer's override when there is
// one, the model's decision otherwise.
func (r Row) Final() string {
	if r.Override != "" {
		return r.Override
	}
	return r.Decision
}

func (r Row) fields() []string {
	return []string{r.Item, r.Path, r.Category, r.DefectType, r.Label, r.Score, r.Threshold, r.Decision,
		r.Overlay, r.Override, r.OverrideBy, r.OverrideAt}
}

// WriteScores writes rows as scores.csv at path.
func WriteScores(path string, rows []Row) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write scores: %w", err)
	}
	w := csv.NewWriter(f)
	_ = w.Write(ScoresHeader)
	for _, r := range rows {
		_ = w.Write(r.fields())
	}
	w.Flush()
	if err := errors.Join(w.Error(), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadScores reads the scores.csv at path.
func ReadScores(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read scores: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = len(ScoresHeader)
	head, err := r.Read()
	if err != nil || strings.Join(head, ",") != strings.Join(ScoresHeader, ",") {
		return nil, fmt.Errorf("read %s: header %q, want %q (an output of another version?) %v", path, head, ScoresHeader, err)
	}
	var rows []Row
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		rows = append(rows, Row{rec[0], rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], rec[7], rec[8], rec[9], rec[10], rec[11]})
	}
}

// Counts are the verdicts of a group of images. Pass and Fail count final
// verdicts (a reviewer's override where there is one); Misses (defective
// images passed) and FalseAlarms (good images failed) are nil when no
// image of the group has a known label.
type Counts struct {
	Images      int  `json:"images"`
	Pass        int  `json:"pass"`
	Fail        int  `json:"fail"`
	Misses      *int `json:"misses"`
	FalseAlarms *int `json:"false_alarms"`
	// Overridden counts the reviewer's overrides that changed a verdict.
	Overridden int `json:"overridden"`
}

func (c *Counts) add(r Row) {
	c.Images++
	final := r.Final()
	if final == Fail {
		c.Fail++
	} else {
		c.Pass++
	}
	if r.Override != "" && r.Override != r.Decision {
		c.Overridden++
	}
	if r.Label == "" {
		return
	}
	if c.Misses == nil {
		c.Misses, c.FalseAlarms = new(int), new(int)
	}
	switch {
	case r.Label == LabelDefect && final == Pass:
		*c.Misses++
	case r.Label == LabelGood && final == Fail:
		*c.FalseAlarms++
	}
}

// CategoryCounts are the counts of one category with its threshold.
type CategoryCounts struct {
	Category  string  `json:"category"`
	Threshold float64 `json:"threshold"`
	Counts
}

// DefectTypeCounts are the counts of one defect type of a category.
type DefectTypeCounts struct {
	Category   string `json:"category"`
	DefectType string `json:"defect_type"`
	Counts
}

// Tally counts rows in all, per category (sorted by name; the threshold
// is that of the category's first row) and per defect type (sorted; rows
// of unknown type are left out of those).
func Tally(rows []Row) (all Counts, cats []CategoryCounts, types []DefectTypeCounts) {
	byCat := map[string]*CategoryCounts{}
	byType := map[[2]string]*DefectTypeCounts{}
	for _, r := range rows {
		all.add(r)
		c := byCat[r.Category]
		if c == nil {
			c = &CategoryCounts{Category: r.Category}
			fmt.Sscan(r.Threshold, &c.Threshold)
			byCat[r.Category] = c
		}
		c.add(r)
		if r.DefectType == "" {
			continue
		}
		k := [2]string{r.Category, r.DefectType}
		t := byType[k]
		if t == nil {
			t = &DefectTypeCounts{Category: r.Category, DefectType: r.DefectType}
			byType[k] = t
		}
		t.add(r)
	}
	for _, c := range byCat {
		cats = append(cats, *c)
	}
	sort.Slice(cats, func(a, b int) bool { return cats[a].Category < cats[b].Category })
	for _, t := range byType {
		types = append(types, *t)
	}
	sort.Slice(types, func(a, b int) bool {
		if types[a].Category != types[b].Category {
			return types[a].Category < types[b].Category
		}
		// "good" first, then the defect types by name.
		ga, gb := types[a].DefectType == LabelGood, types[b].DefectType == LabelGood
		if ga != gb {
			return ga
		}
		return types[a].DefectType < types[b].DefectType
	})
	return all, cats, types
}

// ReasonNoMaps is why a merged output's pixel metrics are null: a shard
// output without maps.bin (written by this version whenever every image is
// labelled).
const ReasonNoMaps = "undefined: a shard output has no anomaly maps (" + MapsName + "; inspect writes it when every image is labelled)"

// Metrics are one category's metrics in summary.json: metrics.Summary's
// keys, undefined ones null with the reason under "undefined".
type Metrics struct {
	metrics.Summary
	// PixelReason, when set, replaces the reason given for null pixel
	// metrics (a merge sets ReasonNoMaps).
	PixelReason string `json:"-"`
}

// MarshalJSON writes the metrics as metrics.Summary does, with PixelReason
// for the pixel metrics when set.
func (m Metrics) MarshalJSON() ([]byte, error) {
	if m.PixelReason == "" {
		return m.Summary.MarshalJSON()
	}
	b, err := m.Summary.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	var undefined map[string]string
	if u, ok := obj["undefined"]; ok {
		if err := json.Unmarshal(u, &undefined); err != nil {
			return nil, err
		}
	}
	fields := make([]metrics.Field, 0, 6)
	for _, f := range []struct {
		key string
		v   float64
	}{{"image_auroc", m.ImageAUROC}, {"image_ap", m.ImageAP}, {"image_f1max", m.ImageF1Max},
		{"pixel_auroc", m.PixelAUROC}, {"pixel_ap", m.PixelAP}, {"pro", m.PRO}} {
		reason := undefined[f.key]
		if strings.HasPrefix(f.key, "pixel") || f.key == "pro" {
			reason = m.PixelReason
		}
		fields = append(fields, metrics.Field{Name: f.key, Value: f.v, Reason: reason})
	}
	return metrics.MarshalFields(fields)
}

// Summary is summary.json: the report's header, its counts and tables, and
// the metrics when labels are known. Every key is snake_case.
type Summary struct {
	Title string `json:"title"`
	// Project is the project's name.
	Project string `json:"project"`
	// Input is the inspected folder.
	Input        string `json:"input"`
	ModelVersion int    `json:"model_version"`
	ModelMethod  string `json:"model_method"`
	ModelRegime  string `json:"model_regime"`
	Backbone     string `json:"backbone"`
	// Threshold is the model's global threshold; CategoryThresholds those
	// of categories that have their own (scores.csv has each row's).
	Threshold          float64            `json:"threshold"`
	CategoryThresholds map[string]float64 `json:"category_thresholds,omitempty"`
	Created            time.Time          `json:"created"`
	Operator           string             `json:"operator"`
	WorkstationVersion string             `json:"workstation_version"`
	Counts
	Categories  []CategoryCounts   `json:"categories"`
	DefectTypes []DefectTypeCounts `json:"defect_types,omitempty"`
	// PerCategory are the metrics when every image's label is known.
	PerCategory map[string]Metrics `json:"per_category,omitempty"`
	// Shard is "i/n" in a shard's output ("" in an unsharded or merged one).
	Shard string `json:"shard,omitempty"`
	// MergedFrom lists the shard folders of a merged output.
	MergedFrom []string `json:"merged_from,omitempty"`
	// HeatmapTop is the end of the overlays' colour ramp in threshold
	// units (1 is the threshold; no colour below it).
	HeatmapTop float64 `json:"heatmap_top,omitempty"`
}

// SetCounts fills the summary's counts and tables from rows, each
// category's threshold from the summary's (exact, where scores.csv holds 8
// significant digits).
func (s *Summary) SetCounts(rows []Row) {
	s.Counts, s.Categories, s.DefectTypes = Tally(rows)
	for i := range s.Categories {
		s.Categories[i].Threshold = s.ThresholdOf(s.Categories[i].Category)
	}
}

// ThresholdOf is the threshold of category.
func (s *Summary) ThresholdOf(category string) float64 {
	if t, ok := s.CategoryThresholds[category]; ok {
		return t
	}
	return s.Threshold
}

// WriteSummary writes s as dir/summary.json.
func WriteSummary(dir string, s Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", SummaryName, err)
	}
	p := filepath.Join(dir, SummaryName)
	if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// ReadSummary reads dir/summary.json.
func ReadSummary(dir string) (Summary, error) {
	p := filepath.Join(dir, SummaryName)
	b, err := os.ReadFile(p)
	if err != nil {
		return Summary{}, fmt.Errorf("read summary: %w", err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return Summary{}, fmt.Errorf("read %s: %w", p, err)
	}
	return s, nil
}

// OverlayName is the overlay file name of the row numbered item (from 1)
// for the image at path.
func OverlayName(item int, path string) string {
	base := filepath.Base(path)
	return fmt.Sprintf("%04d_%s_overlay.png", item, strings.TrimSuffix(base, filepath.Ext(base)))
}
