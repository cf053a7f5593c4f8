package shard

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/core/metrics"
)

// scored is one synthetic scored image.
type scored struct {
	path, category, label string
	score                 float32
}

const inputRoot = "/data/input"

func synthetic(n int, seed uint64) []scored {
	rng := rand.New(rand.NewPCG(seed, 1))
	cats := []string{"bottle", "magnetic_tile", "screw"}
	out := make([]scored, n)
	for i := range out {
		c := cats[i%len(cats)]
		label := "good"
		mean := 0.3
		if rng.IntN(3) == 0 {
			label, mean = "defect", 0.6
		}
		out[i] = scored{
			path:     fmt.Sprintf("%s/%s/test/%s/%03d.png", inputRoot, c, label, i),
			category: c, label: label,
			score: float32(mean + 0.2*rng.NormFloat64()),
		}
	}
	return out
}

// writeInspectOutput writes what `workstation inspect` writes for items in
// the given order, through core/inspection as ui/report does: rows in
// (category, path) order numbered from 1, overlays named to match, the
// score with 8 significant digits, a per-category threshold for "screw",
// metrics from the float32 scores.
func writeInspectOutput(t *testing.T, dir string, items []scored, shard string) {
	t.Helper()
	items = append([]scored(nil), items...)
	sortScored(items)
	os.MkdirAll(filepath.Join(dir, OverlayDir), 0o755)
	const thr = 0.45
	cats := map[string]float64{"screw": 0.5}
	var rows []inspection.Row
	byCat := map[string][]scored{}
	for i, it := range items {
		th := thr
		if c, ok := cats[it.category]; ok {
			th = c
		}
		ov := filepath.ToSlash(filepath.Join(OverlayDir, inspection.OverlayName(i+1, it.path)))
		// The overlay's content names its image, to check the copies.
		os.WriteFile(filepath.Join(dir, ov), []byte("overlay of "+it.path), 0o644)
		rows = append(rows, inspection.Row{Item: strconv.Itoa(i + 1), Path: it.path, Category: it.category,
			DefectType: filepath.Base(filepath.Dir(it.path)), Label: it.label,
			Score: inspection.FormatFloat(float64(it.score)), Threshold: inspection.FormatFloat(th),
			Decision: inspection.Decision(float64(it.score), th), Overlay: ov})
		byCat[it.category] = append(byCat[it.category], it)
	}
	if err := inspection.WriteScores(filepath.Join(dir, ScoresName), rows); err != nil {
		t.Fatal(err)
	}
	per := map[string]inspection.Metrics{}
	for c, its := range byCat {
		s := make([]float32, len(its))
		l := make([]bool, len(its))
		for i, it := range its {
			s[i], l[i] = it.score, it.label == "defect"
		}
		m := metrics.Image(s, l)
		// Pixel metrics of a shard depend on the shard's maps only.
		per[c] = inspection.Metrics{Summary: metrics.Summary{ImageAUROC: m.AUROC, ImageAP: m.AP, ImageF1Max: m.F1Max,
			PixelAUROC: 0.9, PixelAP: 0.5, PRO: 0.8}}
	}
	sum := inspection.Summary{Title: "Inspection of " + inputRoot, Project: "line1", Input: inputRoot, ModelVersion: 3,
		ModelMethod: "dmad", ModelRegime: "unsupervised", Backbone: "mobilenet_v2", Threshold: thr, CategoryThresholds: cats,
		Operator: "ana", WorkstationVersion: "0.1.0", PerCategory: per, Shard: shard}
	sum.SetCounts(rows)
	if err := inspection.WriteSummary(dir, sum); err != nil {
		t.Fatal(err)
	}
}

func sortScored(items []scored) {
	for i := 1; i < len(items); i++ {
		for j := i; j > 0; j-- {
			a, b := items[j-1], items[j]
			if a.category < b.category || (a.category == b.category && a.path < b.path) {
				break
			}
			items[j-1], items[j] = b, a
		}
	}
}

func split(t *testing.T, items []scored, n int, base string) []string {
	parts := make([][]scored, n)
	for _, it := range items {
		rel, _ := filepath.Rel(inputRoot, it.path)
		k := Of(rel, n)
		parts[k] = append(parts[k], it)
	}
	dirs := make([]string, n)
	for k := range parts {
		dirs[k] = filepath.Join(base, fmt.Sprintf("shard-%d", k))
		writeInspectOutput(t, dirs[k], parts[k], Spec{k, n}.String())
	}
	return dirs
}

func TestMergeEqualsUnsharded(t *testing.T) {
	items := synthetic(240, 7)
	base := t.TempDir()
	whole := filepath.Join(base, "unsharded")
	writeInspectOutput(t, whole, items, "")
	want, err := ReadOutput(whole)
	if err != nil {
		t.Fatal(err)
	}
	wantCSV, _ := os.ReadFile(filepath.Join(whole, ScoresName))
	for _, n := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			dir := t.TempDir()
			dirs := split(t, items, n, dir)
			out := filepath.Join(dir, "merged")
			got, err := Merge(context.Background(), out, dirs)
			if err != nil {
				t.Fatal(err)
			}
			gotCSV, _ := os.ReadFile(filepath.Join(out, ScoresName))
			if string(gotCSV) != string(wantCSV) {
				t.Errorf("merged scores.csv differs from the unsharded one")
			}
			for _, r := range want.Rows {
				b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(r.Overlay)))
				if err != nil || string(b) != "overlay of "+r.Path {
					t.Errorf("overlay %s: %q, %v", r.Overlay, b, err)
				}
			}
			w := want.Summary
			g := got.Summary
			// The header, counts and tables are those of the unsharded run.
			wantHead, gotHead := w, g
			wantHead.PerCategory, gotHead.PerCategory, gotHead.MergedFrom = nil, nil, nil
			if !reflect.DeepEqual(gotHead, wantHead) {
				t.Errorf("merged summary\n%+v\nunsharded\n%+v", gotHead, wantHead)
			}
			if len(g.DefectTypes) != 6 || g.Misses == nil || len(g.PerCategory) != len(w.PerCategory) {
				t.Errorf("merged tables: %d defect types, misses %v, %d categories with metrics", len(g.DefectTypes), g.Misses, len(g.PerCategory))
			}
			for c, wm := range w.PerCategory {
				gm := g.PerCategory[c]
				if gm.ImageAUROC != wm.ImageAUROC || gm.ImageAP != wm.ImageAP || gm.ImageF1Max != wm.ImageF1Max {
					t.Errorf("%s: merged image metrics %v %v %v, unsharded %v %v %v", c,
						gm.ImageAUROC, gm.ImageAP, gm.ImageF1Max, wm.ImageAUROC, wm.ImageAP, wm.ImageF1Max)
				}
				if !math.IsNaN(gm.PixelAUROC) || !math.IsNaN(gm.PixelAP) || !math.IsNaN(gm.PRO) {
					t.Errorf("%s: merged pixel metrics are set; they cannot be recomputed from rows", c)
				}
			}
			js, _ := os.ReadFile(filepath.Join(out, SummaryName))
			if !strings.Contains(string(js), `"pixel_auroc": null`) || !strings.Contains(string(js), "no anomaly maps") {
				t.Errorf("merged summary.json does not say why the pixel metrics are null:\n%s", js)
			}
			// What was written reads back the same.
			back, err := ReadOutput(out)
			if err != nil || back.Summary.Images != w.Images || len(back.Summary.MergedFrom) != n {
				t.Errorf("merged output reads back as %+v, %v", back.Summary, err)
			}
		})
	}
}

func TestMergeRefusesWhatIsNotOneRun(t *testing.T) {
	items := synthetic(90, 3)
	base := t.TempDir()
	dirs := split(t, items, 3, base)
	other := filepath.Join(base, "other")
	writeInspectOutput(t, other, items[:10], "")
	b, _ := os.ReadFile(filepath.Join(other, SummaryName))
	os.WriteFile(filepath.Join(other, SummaryName), []byte(strings.Replace(string(b), `"threshold": 0.45`, `"threshold": 0.5`, 1)), 0o644)
	for _, tc := range []struct {
		name string
		dirs []string
		want string
	}{
		{"missing shard", dirs[:2], "shard(s) 2/3 missing"},
		{"same shard twice", []string{dirs[0], dirs[1], dirs[2], dirs[0]}, "both shard"},
		{"other threshold", []string{dirs[0], other}, "not shards of one run"},
		{"no such folder", []string{filepath.Join(base, "nope")}, filepath.Join(base, "nope")},
		{"nothing", nil, "no shard outputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Merge(context.Background(), filepath.Join(t.TempDir(), "out"), tc.dirs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Merge = %v, want an error with %q", err, tc.want)
			}
		})
	}
	// Unnamed outputs that overlap.
	a, b2 := filepath.Join(base, "a"), filepath.Join(base, "b")
	writeInspectOutput(t, a, items[:50], "")
	writeInspectOutput(t, b2, items[40:], "")
	if _, err := Merge(context.Background(), filepath.Join(base, "out"), []string{a, b2}); err == nil || !strings.Contains(err.Error(), "overlapping") {
		t.Errorf("Merge of overlapping outputs = %v", err)
	}
}
