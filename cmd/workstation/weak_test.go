package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// weakDir copies two defective test images per category into
// dir/<category>/, as a user's folder of rejected parts without masks.
func weakDir(t *testing.T, data string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "weak")
	files, err := filepath.Glob(filepath.Join(data, "*", "test", "*", "*.png"))
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, f := range files {
		rel, _ := filepath.Rel(data, f)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		cat, defect := parts[0], parts[2]
		if defect == "good" || per[cat] == 2 {
			continue
		}
		per[cat]++
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, cat, defect+"_"+parts[3])
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(per) != 2 {
		t.Fatalf("weak images for %d categories", len(per))
	}
	return dir
}

func TestTrainWeak(t *testing.T) {
	data, bb, env := fixture(t)
	weak := weakDir(t, data)
	dir := t.TempDir()
	proj := filepath.Join(dir, "p.db")
	args := append([]string{"train", "--project", proj, "--data", data, "--backbone", bb, "--weak", weak}, small...)
	r := cli(t, env, args...)
	if r.code != 0 {
		t.Fatalf("train --weak: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// 4 weak images, one patch each at 8×8 patches (1 % capped at one).
	if !strings.Contains(r.stdout, "model 1 (dmad, semi, 2 categories, 0 seen anomalies, 4 weak (4 patches))") {
		t.Fatalf("train --weak output: %q", r.stdout)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"empty folder", []string{"--weak", t.TempDir()}, 1, "no images"},
		{"images outside category folders", []string{"--weak", filepath.Join(weak, "..", "weak", firstDir(t, weak))}, 1, "not in a category folder"},
		{"patchcore", []string{"--weak", weak, "--method", "patchcore"}, 2, "--weak needs --method dmad"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"train", "--project", proj, "--backbone", bb}, c.args...), small...)
			r := cli(t, env, args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, c.code, c.want)
			}
		})
	}
}

func firstDir(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil || len(es) == 0 {
		t.Fatalf("read %s: %v", dir, err)
	}
	return es[0].Name()
}

// The bench's weak regime trains on the semi split's anomalies without
// their masks, and DMAD runs report their map fusion and the test metrics
// of every candidate fusion weight.
func TestBenchWeak(t *testing.T) {
	data, bb, env := fixture(t)
	out := filepath.Join(t.TempDir(), "bench.json")
	args := append([]string{"bench", "--data", data, "--json", out, "--backbone", bb, "--seen-anomalies", "2",
		"--runs", "dmad-semi,dmad-weak"}, small...)
	r := cli(t, env, args...)
	if r.code != 0 {
		t.Fatalf("bench: exit %d\n%s", r.code, r.stderr)
	}
	var rep struct {
		Runs []struct {
			Regime        string             `json:"regime"`
			SeenAnomalies int                `json:"seen_anomalies"`
			Mean          map[string]float64 `json:"mean"`
			MapFusion     *struct {
				MapperWeight float64 `json:"mapper_weight"`
			} `json:"map_fusion"`
			MapVariants []struct {
				MapperWeight float64            `json:"mapper_weight"`
				Mean         map[string]float64 `json:"mean"`
			} `json:"map_variants"`
		} `json:"runs"`
	}
	readJSON(t, out, &rep)
	if len(rep.Runs) != 2 {
		t.Fatalf("%d runs", len(rep.Runs))
	}
	for i, run := range rep.Runs {
		if run.Regime != "semi" || run.SeenAnomalies != 4 || run.MapFusion == nil || len(run.MapVariants) != 5 {
			t.Fatalf("run %d: %+v", i, run)
		}
		for _, k := range []string{"image_auroc", "pixel_auroc", "pro"} {
			if v := run.Mean[k]; v <= 0 || v > 1 {
				t.Fatalf("run %d mean %s = %v", i, k, v)
			}
		}
	}
	// The two regimes differ: masks versus top patches. The maps of the
	// mapper's scores alone (weight 1) show it even where the validation
	// split kept the distance's maps for both.
	mapperOnly := func(i int) map[string]float64 {
		for _, v := range rep.Runs[i].MapVariants {
			if v.MapperWeight == 1 {
				return v.Mean
			}
		}
		t.Fatalf("run %d has no weight-1 map variant", i)
		return nil
	}
	if a, b := mapperOnly(0), mapperOnly(1); a["pixel_auroc"] == b["pixel_auroc"] && a["pro"] == b["pro"] && rep.Runs[0].Mean["image_auroc"] == rep.Runs[1].Mean["image_auroc"] {
		t.Fatal("dmad-weak scored exactly like dmad-semi")
	}
	if r := cli(t, env, append([]string{"bench", "--data", data, "--json", out, "--backbone", bb, "--map-weight", "2"}, small...)...); r.code != 2 || !strings.Contains(r.stderr, "--map-weight") {
		t.Fatalf("--map-weight 2: exit %d %q", r.code, r.stderr)
	}
}
