package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/encoder/encodertest"
	"github.com/dmad/workstation/core/synth"
	"github.com/dmad/workstation/storage"
)

// binary is the workstation built once for these tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "workstation-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "workstation")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func cli(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// fixture writes a tiny MVTec-layout dataset and the tiny backbone.
func fixture(t *testing.T) (data, backbone string, env []string) {
	t.Helper()
	root := t.TempDir()
	data = filepath.Join(root, "data")
	if err := synth.WriteDataset(data, synth.DatasetOptions{Categories: 2, TrainPerCategory: 10, TestGoodPerCategory: 4, TestDefectPerCategory: 6, Size: 64, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	bb, err := encodertest.Write(filepath.Join(root, "bb"), 5)
	if err != nil {
		t.Fatal(err)
	}
	env = []string{"XDG_DATA_HOME=" + filepath.Join(root, "xdg-data"), "XDG_CONFIG_HOME=" + filepath.Join(root, "xdg-config")}
	return data, bb, env
}

var small = []string{"--threads", "2", "--quiet", "--epochs", "2", "--batch", "512", "--train-patches", "3000", "--ood-images", "8", "--input-size", "64"}

func TestTrainEvalInspectExport(t *testing.T) {
	data, bb, env := fixture(t)
	dir := t.TempDir()
	proj := filepath.Join(dir, "p.db")
	args := append([]string{"train", "--project", proj, "--data", data, "--backbone", bb, "--seen-anomalies", "2"}, small...)
	r := cli(t, env, args...)
	if r.code != 0 {
		t.Fatalf("train: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "model 1 (dmad, semi, 2 categories, 4 seen anomalies)") {
		t.Fatalf("train output: %q", r.stdout)
	}

	evalJSON := filepath.Join(dir, "eval.json")
	r = cli(t, env, "eval", "--project", proj, "--json", evalJSON, "--quiet", "--threads", "2")
	if r.code != 0 {
		t.Fatalf("eval: exit %d\n%s", r.code, r.stderr)
	}
	var ev evalReport
	readJSON(t, evalJSON, &ev)
	// 2 categories × (4 good + 6 defect) test images, minus the 4 seen ones.
	if len(ev.Images) != 16 || len(ev.PerCategory) != 2 || ev.ModelVersion != 1 || ev.Regime != "semi" {
		t.Fatalf("eval report: %d images, %d categories, model %d, regime %s", len(ev.Images), len(ev.PerCategory), ev.ModelVersion, ev.Regime)
	}
	for c, m := range ev.PerCategory {
		if m.ImageAUROC < 0 || m.ImageAUROC > 1 || m.PixelAUROC <= 0 || m.PixelAUROC > 1 || m.PRO < 0 || m.PRO > 1 {
			t.Fatalf("category %s metrics out of range: %+v", c, m)
		}
	}

	out := filepath.Join(dir, "inspect")
	input := filepath.Join(data, "tile") // one MVTec category: its test images, with labels and masks
	r = cli(t, env, "inspect", "--project", proj, "--input", input, "--out", out, "--quiet", "--threads", "2")
	if r.code != 0 {
		t.Fatalf("inspect: exit %d\n%s", r.code, r.stderr)
	}
	f, err := os.Open(filepath.Join(out, "scores.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 11 { // header + 10 test images of one category
		t.Fatalf("scores.csv has %d rows", len(rows))
	}
	overlays, _ := filepath.Glob(filepath.Join(out, "overlays", "*.png"))
	if len(overlays) != 10 {
		t.Fatalf("%d overlays", len(overlays))
	}
	for _, name := range []string{"report.html", "summary.json"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Fatal(err)
		}
	}
	// A plain folder of unlabelled images (an auditor's batch).
	plain := filepath.Join(dir, "plain")
	r = cli(t, env, "inspect", "--project", proj, "--input", filepath.Join(data, "disc", "test", "good"), "--out", plain, "--quiet")
	if r.code != 0 || !strings.Contains(r.stdout, "4 images") {
		t.Fatalf("inspect plain folder: exit %d %q %q", r.code, r.stdout, r.stderr)
	}

	// The fast search mode scores the same images with the same scores (the
	// cascade re-ranks its candidates exactly; on a bank this small it finds
	// every exact neighbour).
	fastOut := filepath.Join(dir, "inspect-fast")
	r = cli(t, env, "inspect", "--project", proj, "--input", input, "--out", fastOut, "--quiet", "--threads", "2", "--search", "fast")
	if r.code != 0 {
		t.Fatalf("inspect --search fast: exit %d\n%s", r.code, r.stderr)
	}
	ff, err := os.Open(filepath.Join(fastOut, "scores.csv"))
	if err != nil {
		t.Fatal(err)
	}
	fastRows, err := csv.NewReader(ff).ReadAll()
	ff.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(fastRows) != len(rows) {
		t.Fatalf("fast scores.csv has %d rows, exact %d", len(fastRows), len(rows))
	}
	scoreCol := slices.Index(rows[0], "score")
	if scoreCol < 0 {
		t.Fatalf("no score column in %v", rows[0])
	}
	for i := 1; i < len(rows); i++ {
		e, _ := strconv.ParseFloat(rows[i][scoreCol], 64)
		f, _ := strconv.ParseFloat(fastRows[i][scoreCol], 64)
		if rows[i][0] != fastRows[i][0] || math.Abs(e-f) > 1e-4*math.Max(1, math.Abs(e)) {
			t.Errorf("row %d: exact %v, fast %v", i, rows[i], fastRows[i])
		}
	}

	// Commands that only read open the project read-only: they run while
	// another reader holds it (a writer would wait for the lock and fail).
	reader, err := storage.Open(proj, storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"inspect", "--project", proj, "--input", input, "--out", filepath.Join(dir, "shared"), "--quiet", "--threads", "2"},
		{"eval", "--project", proj, "--json", filepath.Join(dir, "shared.json"), "--save=false", "--quiet", "--threads", "2"},
		{"export-model", "--project", proj, "--out", filepath.Join(dir, "shared.dmad")},
	} {
		if r := cli(t, env, args...); r.code != 0 {
			t.Errorf("%s beside another reader: exit %d %q", args[0], r.code, r.stderr)
		}
	}
	reader.Close()

	// A model moves between projects; a project on another backbone refuses it.
	model := filepath.Join(dir, "model.dmad")
	if r = cli(t, env, "export-model", "--project", proj, "--out", model); r.code != 0 {
		t.Fatalf("export: %s", r.stderr)
	}
	if r = cli(t, env, "import-model", "--project", proj, "--in", model); r.code != 0 || !strings.Contains(r.stdout, "model 2") {
		t.Fatalf("import: %q %q", r.stdout, r.stderr)
	}
	fresh := filepath.Join(dir, "fresh.db")
	if r = cli(t, env, "import-model", "--project", fresh, "--in", model); r.code != 0 {
		t.Fatalf("import into a new project: %q", r.stderr)
	}
	other := filepath.Join(dir, "other.db")
	p, err := storage.Create(other, "other")
	if err != nil {
		t.Fatal(err)
	}
	st := p.Settings()
	st.Backbone = "mobilenet_v2_imagenet"
	if err := p.PutSettings(st); err != nil {
		t.Fatal(err)
	}
	p.Close()
	r = cli(t, env, "import-model", "--project", other, "--in", model)
	if r.code != 1 || !strings.Contains(r.stderr, `trained on backbone "tiny"`) {
		t.Fatalf("import into a project on another backbone: exit %d %q", r.code, r.stderr)
	}
}

func TestBench(t *testing.T) {
	data, bb, env := fixture(t)
	out := filepath.Join(t.TempDir(), "bench.json")
	args := append([]string{"bench", "--data", data, "--json", out, "--backbone", bb, "--seen-anomalies", "2", "--memory", "300MiB"}, small...)
	r := cli(t, env, args...)
	if r.code != 0 {
		t.Fatalf("bench: exit %d\n%s", r.code, r.stderr)
	}
	var rep struct {
		Backbone       string             `json:"backbone"`
		Device         string             `json:"device"`
		ImageSize      int                `json:"image_size"`
		MemoryBudgetMB float64            `json:"memory_budget_mb"`
		PeakRSSMB      float64            `json:"peak_rss_mb"`
		GEMM           map[string]float64 `json:"gemm"`
		Runs           []struct {
			Method        string                        `json:"method"`
			Regime        string                        `json:"regime"`
			SeenAnomalies int                           `json:"seen_anomalies"`
			PerCategory   map[string]map[string]float64 `json:"per_category"`
			Mean          map[string]float64            `json:"mean"`
			Timings       map[string]float64            `json:"timings"`
			PeakRSSMB     float64                       `json:"peak_rss_mb"`
			ImagesPerS    float64                       `json:"images_per_s"`
			Search        string                        `json:"search"`
			SigmaVariants []struct {
				Sigma float64            `json:"sigma"`
				Mean  map[string]float64 `json:"mean"`
			} `json:"sigma_variants"`
			Fast *struct {
				Mode       string             `json:"mode"`
				Mean       map[string]float64 `json:"mean"`
				ImagesPerS float64            `json:"images_per_s"`
			} `json:"fast"`
		} `json:"runs"`
	}
	readJSON(t, out, &rep)
	if rep.Backbone != "tiny" || rep.Device != "cpu" || rep.ImageSize != 64 || len(rep.Runs) != 3 {
		t.Fatalf("report header: %+v", rep)
	}
	if rep.MemoryBudgetMB != 300 || rep.PeakRSSMB <= 0 || rep.GEMM["gemm_gflops"] <= 0 || rep.GEMM["ratio"] <= 0 {
		t.Fatalf("report memory and GEMM: budget %v MB, peak %v MB, gemm %v", rep.MemoryBudgetMB, rep.PeakRSSMB, rep.GEMM)
	}
	want := [][2]string{{"patchcore", "unsupervised"}, {"dmad", "unsupervised"}, {"dmad", "semi"}}
	for i, run := range rep.Runs {
		if run.Method != want[i][0] || run.Regime != want[i][1] {
			t.Fatalf("run %d is %s/%s, want %v", i, run.Method, run.Regime, want[i])
		}
		if len(run.PerCategory) != 2 || run.PeakRSSMB <= 0 || run.Timings["infer_ms_per_image"] <= 0 || run.ImagesPerS <= 0 {
			t.Fatalf("run %d incomplete: %+v", i, run)
		}
		if f := run.Fast; run.Search != "exact" || f == nil || f.Mode != "fast" || f.ImagesPerS <= 0 || f.Mean["image_auroc"] <= 0 {
			t.Fatalf("run %d: fast search side by side missing: %+v", i, run.Fast)
		}
		if sv := run.SigmaVariants; run.Method == "dmad" && (len(sv) != 2 || sv[0].Sigma != 2 || sv[1].Sigma != 8 || sv[0].Mean["pixel_auroc"] <= 0) {
			t.Fatalf("run %d: smoothing variants %+v", i, sv)
		}
		for _, k := range []string{"image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap", "pro"} {
			if v, ok := run.Mean[k]; !ok || v < 0 || v > 1 {
				t.Fatalf("run %d mean %s = %v", i, k, v)
			}
		}
	}
	if rep.Runs[2].SeenAnomalies != 4 || rep.Runs[0].SeenAnomalies != 0 {
		t.Fatalf("seen anomalies %d/%d", rep.Runs[0].SeenAnomalies, rep.Runs[2].SeenAnomalies)
	}
	// --fast-only scores once, with the fast search: PatchCore's metrics
	// are then the ones the fast pass gave beside exact.
	sideBySide := rep.Runs[0].Fast.Mean
	fastOut := filepath.Join(t.TempDir(), "fast.json")
	args = append([]string{"bench", "--data", data, "--json", fastOut, "--backbone", bb, "--seen-anomalies", "2", "--memory", "300MiB", "--runs", "patchcore", "--fast-only"}, small...)
	if r := cli(t, env, args...); r.code != 0 {
		t.Fatalf("bench --fast-only: exit %d\n%s", r.code, r.stderr)
	}
	rep.Runs = nil
	readJSON(t, fastOut, &rep)
	if len(rep.Runs) != 1 || rep.Runs[0].Search != "fast" || rep.Runs[0].Fast != nil {
		t.Fatalf("--fast-only runs: %+v", rep.Runs)
	}
	for _, k := range []string{"image_auroc", "pixel_auroc", "pro"} {
		if got, want := rep.Runs[0].Mean[k], sideBySide[k]; got != want {
			t.Errorf("--fast-only %s = %v, the fast pass beside exact gave %v", k, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	data, bb, env := fixture(t)
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.db")
	if err := os.WriteFile(corrupt, []byte("this is not a project"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"bad flag", []string{"train", "--no-such-flag"}, 2, "no-such-flag"},
		{"missing data", []string{"train", "--project", filepath.Join(dir, "x.db"), "--data", filepath.Join(dir, "nope"), "--backbone", bb}, 1, "nope"},
		{"missing backbone", []string{"bench", "--data", data, "--json", filepath.Join(dir, "b.json"), "--backbone", filepath.Join(dir, "none.onnx")}, 1, "none.onnx: no such file"},
		{"corrupt project", []string{"eval", "--project", corrupt, "--json", filepath.Join(dir, "e.json")}, 1, "corrupt.db"},
		{"missing project", []string{"eval", "--project", filepath.Join(dir, "absent.db"), "--json", filepath.Join(dir, "e.json")}, 1, "absent.db"},
		{"bad memory", []string{"bench", "--data", data, "--json", filepath.Join(dir, "b.json"), "--backbone", bb, "--memory", "lots"}, 2, `memory size "lots"`},
		{"small memory", []string{"bench", "--data", data, "--json", filepath.Join(dir, "b.json"), "--backbone", bb, "--memory", "1MiB"}, 2, "--memory 1MiB is out of range"},
		{"bad device", []string{"bench", "--data", data, "--json", filepath.Join(dir, "b.json"), "--backbone", bb, "--device", "tpu"}, 2, "tpu"},
		{"no model yet", []string{"inspect", "--project", filepath.Join(dir, "fresh.db"), "--input", data, "--out", dir}, 1, "fresh.db"},
	} {
		if c.name == "no model yet" {
			if r := cli(t, env, "train", "--project", filepath.Join(dir, "fresh.db"), "--backbone", bb, "--quiet"); r.code == 0 {
				t.Fatalf("training an empty project succeeded")
			}
			p, err := storage.Create(filepath.Join(dir, "fresh.db"), "fresh") // the failed train left none
			if err != nil {
				t.Fatal(err)
			}
			p.Close()
		}
		r := cli(t, env, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d (want %d), stderr %q should mention %q", c.name, r.code, c.code, r.stderr, c.want)
		}
	}
}

func TestBackboneStore(t *testing.T) {
	_, bb, env := fixture(t)
	store := t.TempDir()
	if r := cli(t, env, "backbone", "import", bb, "--store", store); r.code != 0 {
		t.Fatalf("import: %s", r.stderr)
	}
	r := cli(t, env, "backbone", "list", "--store", store)
	if r.code != 0 || !strings.Contains(r.stdout, "tiny") || !strings.Contains(r.stdout, "installed") {
		t.Fatalf("list: %q %q", r.stdout, r.stderr)
	}
	// The known cards come in name order, the same every time (they are
	// a map: four listings would show two orders otherwise).
	for range 4 {
		var known []string
		for _, line := range strings.Split(cli(t, env, "backbone", "list", "--store", store).stdout, "\n") {
			if strings.HasSuffix(line, "(known card)") {
				known = append(known, strings.Fields(line)[0])
			}
		}
		if len(known) < 2 || !slices.IsSorted(known) {
			t.Fatalf("known cards listed as %v, want two or more in name order", known)
		}
	}
	// A card naming a tensor the network lacks is refused before anything is stored.
	bad := filepath.Join(t.TempDir(), "bad.onnx")
	b, _ := os.ReadFile(bb)
	os.WriteFile(bad, b, 0o644)
	os.WriteFile(strings.TrimSuffix(bad, ".onnx")+".json", []byte(`{"name":"bad","input":"image","normalize":{"scale":1},"feature_tensors":[{"tensor":"nope","stride":8,"channels":5}]}`), 0o644)
	r = cli(t, env, "backbone", "import", bad, "--store", store)
	if r.code != 1 || !strings.Contains(r.stderr, "nope") {
		t.Fatalf("bad card: exit %d %q", r.code, r.stderr)
	}
	if r = cli(t, env, "backbone", "rm", "tiny", "--store", store); r.code != 0 {
		t.Fatalf("rm: %s", r.stderr)
	}
}

// TestFlagRanges: numbers out of range are usage errors naming the flag,
// found before anything is created.
func TestFlagRanges(t *testing.T) {
	data, bb, env := fixture(t)
	dir := t.TempDir()
	proj := filepath.Join(dir, "p.db")
	for _, c := range []struct{ flag, value string }{
		{"--epochs", "-1"}, {"--seen-anomalies", "-3"}, {"--coreset-ratio", "-0.1"}, {"--coreset-ratio", "1.5"},
		{"--threads", "-4"}, {"--input-size", "-224"}, {"--batch", "-5"}, {"--hidden", "-1"},
		{"--train-patches", "-1"}, {"--ood-images", "-2"}, {"--lr", "-0.1"},
	} {
		r := cli(t, env, "train", "--project", proj, "--data", data, "--backbone", bb, "--quiet", c.flag, c.value)
		if r.code != 2 || !strings.Contains(r.stderr, c.flag+" "+c.value) || !strings.Contains(r.stderr, "want") {
			t.Errorf("train %s %s: exit %d (want 2), stderr %q", c.flag, c.value, r.code, r.stderr)
		}
		if _, err := os.Stat(proj); !os.IsNotExist(err) {
			t.Fatalf("train %s %s left %s behind", c.flag, c.value, proj)
		}
	}
	r := cli(t, env, "bench", "--data", data, "--json", filepath.Join(dir, "b.json"), "--backbone", bb, "--threads", "-4")
	if r.code != 2 || !strings.Contains(r.stderr, "--threads -4") {
		t.Errorf("bench --threads -4: exit %d, stderr %q", r.code, r.stderr)
	}
	r = cli(t, env, "inspect", "--project", proj, "--input", data, "--out", filepath.Join(dir, "o"), "--search", "approximate")
	if r.code != 2 || !strings.Contains(r.stderr, "--search") {
		t.Errorf("inspect --search approximate: exit %d, stderr %q", r.code, r.stderr)
	}
	r = cli(t, env, "eval", "--json", filepath.Join(dir, "e.json"))
	if r.code != 2 || !strings.Contains(r.stderr, "--project is required") {
		t.Errorf("eval without --project: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestFailuresLeaveNothing: commands that read never create a project, a
// failed train removes the project it made, and a failed open leaves an
// empty file as it was.
func TestFailuresLeaveNothing(t *testing.T) {
	data, bb, env := fixture(t)
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.db")
	for _, args := range [][]string{
		{"export-model", "--project", typo, "--out", filepath.Join(dir, "m.dmad")},
		{"inspect", "--project", typo, "--input", data, "--out", filepath.Join(dir, "out")},
		{"eval", "--project", typo, "--json", filepath.Join(dir, "e.json")},
		{"train", "--project", typo, "--data", filepath.Join(dir, "nope"), "--backbone", bb, "--quiet"},
		{"train", "--project", typo, "--data", data, "--backbone", filepath.Join(dir, "nope", "model.onnx"), "--quiet"},
	} {
		r := cli(t, env, args...)
		if r.code != 1 {
			t.Errorf("%v: exit %d, want 1 (%q)", args, r.code, r.stderr)
		}
		if _, err := os.Stat(typo); !os.IsNotExist(err) {
			t.Fatalf("%v left %s behind", args, typo)
		}
	}
	r := cli(t, env, "train", "--project", typo, "--data", data, "--backbone", filepath.Join(dir, "nope", "model.onnx"), "--quiet")
	if !strings.Contains(r.stderr, "model.onnx: no such file") || strings.Contains(r.stderr, "card") {
		t.Errorf("missing backbone file: stderr %q should name model.onnx, not its card", r.stderr)
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"eval", "--project", empty, "--json", filepath.Join(dir, "e.json")},
		{"export-model", "--project", empty, "--out", filepath.Join(dir, "m.dmad")},
		{"train", "--project", empty, "--data", data, "--backbone", bb, "--quiet"},
	} {
		r := cli(t, env, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "empty") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		if st, err := os.Stat(empty); err != nil || st.Size() != 0 {
			t.Fatalf("%v rewrote the empty file", args)
		}
	}
}

// readJSON decodes the JSON file at path into v, failing the test when it
// cannot.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
