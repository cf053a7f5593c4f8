package inspection

import (
	"encoding/json"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dmad/workstation/core/metrics"
)

func ip(n int) *int { return &n }

func TestTally(t *testing.T) {
	row := func(cat, typ, label, decision, override string) Row {
		return Row{Category: cat, DefectType: typ, Label: label, Decision: decision, Override: override, Threshold: "0.5"}
	}
	tests := []struct {
		name      string
		rows      []Row
		want      Counts
		wantTypes []string
	}{
		{"unlabelled", []Row{row("a", "", "", Fail, ""), row("a", "", "", Pass, "")},
			Counts{Images: 2, Pass: 1, Fail: 1}, nil},
		{"a miss and a false alarm", []Row{
			row("a", "good", LabelGood, Fail, ""), row("a", "good", LabelGood, Pass, ""),
			row("a", "crack", LabelDefect, Pass, ""), row("a", "crack", LabelDefect, Fail, ""),
			row("b", "scratch", LabelDefect, Fail, "")},
			Counts{Images: 5, Pass: 2, Fail: 3, Misses: ip(1), FalseAlarms: ip(1)}, []string{"a/good", "a/crack", "b/scratch"}},
		{"a reviewer's override is the final verdict", []Row{
			row("a", "good", LabelGood, Fail, Pass), row("a", "crack", LabelDefect, Pass, Fail), row("a", "crack", LabelDefect, Fail, Fail)},
			Counts{Images: 3, Pass: 1, Fail: 2, Misses: ip(0), FalseAlarms: ip(0), Overridden: 2}, []string{"a/good", "a/crack"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all, cats, types := Tally(tt.rows)
			if !reflect.DeepEqual(all, tt.want) {
				t.Errorf("counts %+v, want %+v", all, tt.want)
			}
			var names []string
			for _, ty := range types {
				names = append(names, ty.Category+"/"+ty.DefectType)
			}
			if !reflect.DeepEqual(names, tt.wantTypes) {
				t.Errorf("defect types %v, want %v", names, tt.wantTypes)
			}
			n := 0
			for _, c := range cats {
				n += c.Images
				if c.Threshold != 0.5 {
					t.Errorf("category %s threshold %v", c.Category, c.Threshold)
				}
			}
			if n != len(tt.rows) {
				t.Errorf("categories hold %d images, want %d", n, len(tt.rows))
			}
		})
	}
}

// summary.json and scores.csv read back what was written; every key is
// snake_case; undefined metrics are null with a reason.
func TestSummaryAndScoresRoundTrip(t *testing.T) {
	dir := t.TempDir()
	rows := []Row{
		{Item: "1", Path: "/in/a/test/good/1.png", Category: "a", DefectType: "good", Label: LabelGood, Score: "0.25", Threshold: "0.5", Decision: Pass},
		{Item: "2", Path: "/in/a/test/crack/2.png", Category: "a", DefectType: "crack", Label: LabelDefect, Score: "0.75", Threshold: "0.5", Decision: Fail,
			Overlay: "overlays/0002_2_overlay.png", Override: Pass, OverrideBy: "ana", OverrideAt: "2026-11-30T10:00:00Z"},
	}
	if err := WriteScores(filepath.Join(dir, ScoresName), rows); err != nil {
		t.Fatal(err)
	}
	back, err := ReadScores(filepath.Join(dir, ScoresName))
	if err != nil || !reflect.DeepEqual(back, rows) {
		t.Fatalf("scores read back as %+v, %v", back, err)
	}
	nan := math.NaN()
	s := Summary{Title: "t", Project: "p", Input: "/in", ModelVersion: 2, Threshold: 0.5, CategoryThresholds: map[string]float64{"a": 0.5},
		Created: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC), Operator: "ana", WorkstationVersion: "0.1.0",
		PerCategory: map[string]Metrics{"a": {Summary: metrics.Summary{ImageAUROC: 1, ImageAP: 1, ImageF1Max: 1, PixelAUROC: nan, PixelAP: nan, PRO: nan}, PixelReason: ReasonNoMaps}}}
	s.SetCounts(rows)
	if err := WriteSummary(dir, s); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSummary(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Misses == nil || *got.Misses != 1 || got.Overridden != 1 || got.Created != s.Created || len(got.DefectTypes) != 2 ||
		got.PerCategory["a"].ImageAUROC != 1 || !math.IsNaN(got.PerCategory["a"].PRO) {
		t.Errorf("summary read back as %+v", got)
	}
	var raw map[string]any
	b, _ := json.Marshal(s)
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var keys func(v any)
	keys = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if k != strings.ToLower(k) || strings.ContainsAny(k, "- ") {
					t.Errorf("key %q is not snake_case", k)
				}
				keys(e)
			}
		case []any:
			for _, e := range v {
				keys(e)
			}
		}
	}
	keys(raw)
	if !strings.Contains(string(b), ReasonNoMaps) || !strings.Contains(string(b), `"misses":1`) {
		t.Errorf("summary.json: %s", b)
	}
}
