package shard

import (
	"context"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/core/pipeline"
)

// scored is one synthetic scored image.
type scored struct {
	path, category, label string
	score                 float32
	patches               []float32 // mapGrid² patch scores
	mask                  []bool    // mapSize² defect pixels, nil for good images
}

// The geometry of the synthetic anomaly maps.
const (
	mapGrid = 4
	mapSize = 16
)

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
			score:   float32(mean + 0.2*rng.NormFloat64()),
			patches: make([]float32, mapGrid*mapGrid),
		}
		for k := range out[i].patches {
			out[i].patches[k] = float32(0.3 + 0.1*rng.NormFloat64())
		}
		if label == "defect" {
			// A defect of 2×2 patches, brighter in the map, marked in the mask.
			px, py := rng.IntN(mapGrid-1), rng.IntN(mapGrid-1)
			out[i].mask = make([]bool, mapSize*mapSize)
			for y := py * mapSize / mapGrid; y < (py+2)*mapSize/mapGrid; y++ {
				for x := px * mapSize / mapGrid; x < (px+2)*mapSize/mapGrid; x++ {
					out[i].mask[y*mapSize+x] = true
				}
			}
			for _, k := range []int{py*mapGrid + px, py*mapGrid + px + 1, (py+1)*mapGrid + px, (py+1)*mapGrid + px + 1} {
				out[i].patches[k] += float32(0.2 + 0.1*rng.NormFloat64())
			}
		}
	}
	return out
}

// writeInspectOutput writes what `workstation inspect` writes for items in
// the given order, through core/inspection as ui/report does: rows in
// (category, path) order numbered from 1, overlays named to match, the
// score with 8 significant digits, a per-category threshold for "screw",
// metrics from the float32 scores and (withMaps) the anomaly maps by the
// engine's own evaluation, and maps.bin.
func writeInspectOutput(t *testing.T, dir string, items []scored, shard string, withMaps bool) {
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
	// The metrics as the engine computes them (pipeline.Evaluate), with
	// masks already in the input geometry.
	cfg := encoder.Config{InputSize: mapSize}
	ev := make([]pipeline.Scored, len(items))
	pm := inspection.PixelMaps{GridH: mapGrid, GridW: mapGrid, Size: mapSize}
	for i, it := range items {
		ev[i] = pipeline.Scored{Path: it.path, Category: it.category, Anomalous: it.label == "defect",
			Result: pipeline.ImageResult{Score: it.score, Patches: it.patches}}
		pm.Images = append(pm.Images, inspection.ImageMap{Path: it.path, Patches: it.patches, Mask: it.mask})
	}
	evPer, _, err := pipeline.EvaluateMasks(context.Background(), ev, mapGrid, mapGrid, cfg, func(i int) (*image.Gray, error) {
		if items[i].mask == nil {
			return nil, nil
		}
		g := image.NewGray(image.Rect(0, 0, mapSize, mapSize))
		for k, on := range items[i].mask {
			if on {
				g.Pix[k] = 255
			}
		}
		return g, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]inspection.Metrics{}
	for c := range byCat {
		per[c] = inspection.Metrics{Summary: evPer[c]}
	}
	if withMaps {
		if err := inspection.WriteMaps(dir, pm); err != nil {
			t.Fatal(err)
		}
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

func split(t *testing.T, items []scored, n int, base string, withMaps bool) []string {
	parts := make([][]scored, n)
	for _, it := range items {
		rel, _ := filepath.Rel(inputRoot, it.path)
		k := Of(rel, n)
		parts[k] = append(parts[k], it)
	}
	dirs := make([]string, n)
	for k := range parts {
		dirs[k] = filepath.Join(base, fmt.Sprintf("shard-%d", k))
		writeInspectOutput(t, dirs[k], parts[k], Spec{k, n}.String(), withMaps)
	}
	return dirs
}

func TestMergeEqualsUnsharded(t *testing.T) {
	items := synthetic(240, 7)
	base := t.TempDir()
	whole := filepath.Join(base, "unsharded")
	writeInspectOutput(t, whole, items, "", true)
	want, err := ReadOutput(whole)
	if err != nil {
		t.Fatal(err)
	}
	wantCSV, _ := os.ReadFile(filepath.Join(whole, ScoresName))
	for _, tc := range []struct {
		n        int
		withMaps bool
	}{{1, true}, {2, true}, {3, true}, {5, true}, {3, false}} {
		n := tc.n
		t.Run(fmt.Sprintf("n=%d/maps=%v", n, tc.withMaps), func(t *testing.T) {
			dir := t.TempDir()
			dirs := split(t, items, n, dir, tc.withMaps)
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
				if math.IsNaN(wm.PixelAUROC) || math.IsNaN(wm.PRO) || wm.PixelAUROC < 0.6 {
					t.Fatalf("%s: the unsharded run's pixel metrics %+v: the synthetic maps do not work", c, wm)
				}
				if !tc.withMaps {
					if !math.IsNaN(gm.PixelAUROC) || !math.IsNaN(gm.PixelAP) || !math.IsNaN(gm.PRO) {
						t.Errorf("%s: merged pixel metrics are set without maps", c)
					}
				} else if gm.PixelAUROC != wm.PixelAUROC || gm.PixelAP != wm.PixelAP || gm.PRO != wm.PRO {
					t.Errorf("%s: merged pixel metrics %v %v %v, unsharded %v %v %v", c,
						gm.PixelAUROC, gm.PixelAP, gm.PRO, wm.PixelAUROC, wm.PixelAP, wm.PRO)
				}
			}
			js, _ := os.ReadFile(filepath.Join(out, SummaryName))
			if !tc.withMaps && (!strings.Contains(string(js), `"pixel_auroc": null`) || !strings.Contains(string(js), "no anomaly maps")) {
				t.Errorf("merged summary.json does not say why the pixel metrics are null:\n%s", js)
			}
			if tc.withMaps && strings.Contains(string(js), "null") {
				t.Errorf("merged summary.json has null metrics:\n%s", js)
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
	dirs := split(t, items, 3, base, true)
	other := filepath.Join(base, "other")
	writeInspectOutput(t, other, items[:10], "", true)
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
	writeInspectOutput(t, a, items[:50], "", true)
	writeInspectOutput(t, b2, items[40:], "", true)
	if _, err := Merge(context.Background(), filepath.Join(base, "out"), []string{a, b2}); err == nil || !strings.Contains(err.Error(), "overlapping") {
		t.Errorf("Merge of overlapping outputs = %v", err)
	}
}
