package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dmad/workstation"
	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/core/review"
	"github.com/dmad/workstation/storage"
	"github.com/dmad/workstation/ui/report"
	"github.com/dmad/workstation/ui/report/reporttest"
)

// The threshold of a category is the same number in eval's JSON (the
// model's), inspect's output line, summary.json, scores.csv, report.html
// and report.pdf.
func TestThresholdAgreesAcrossCLIAndReport(t *testing.T) {
	data, bb, env := fixture(t)
	proj := trainTiny(t, data, bb, env)
	dir := t.TempDir()
	evalJSON := filepath.Join(dir, "eval.json")
	if r := cli(t, env, "eval", "--project", proj, "--json", evalJSON, "--save=false", "--quiet", "--threads", "2"); r.code != 0 {
		t.Fatalf("eval: exit %d\n%s", r.code, r.stderr)
	}
	var ev evalReport
	readJSON(t, evalJSON, &ev)
	if ev.WorkstationVersion != workstation.Version() {
		t.Errorf("eval JSON version %q, want %q", ev.WorkstationVersion, workstation.Version())
	}
	model, ok := ev.CategoryThresholds["tile"]
	if !ok {
		t.Fatalf("eval JSON has no threshold for tile: %v", ev.CategoryThresholds)
	}
	out := filepath.Join(dir, "out")
	r := cli(t, env, "inspect", "--project", proj, "--input", filepath.Join(data, "tile"), "--out", out, "--quiet", "--threads", "2", "--operator", "Ana Lima")
	if r.code != 0 {
		t.Fatalf("inspect: exit %d\n%s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`thresholds tile ([0-9.]+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("inspect output names no threshold for tile: %q", r.stdout)
	}
	sum, err := inspection.ReadSummary(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Categories) != 1 || sum.Categories[0].Category != "tile" {
		t.Fatalf("summary categories %+v", sum.Categories)
	}
	thr := sum.Categories[0].Threshold
	if thr != float64(model) || fmt.Sprintf("%.4f", thr) != m[1] {
		t.Errorf("threshold: model %v, summary.json %v, inspect printed %s", model, thr, m[1])
	}
	rows, err := inspection.ReadScores(filepath.Join(out, report.CSVName))
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if row.Threshold != inspection.FormatFloat(thr) {
			t.Errorf("scores.csv row %s threshold %s, want %s", row.Item, row.Threshold, inspection.FormatFloat(thr))
		}
	}
	html, err := os.ReadFile(filepath.Join(out, report.HTMLName))
	if err != nil {
		t.Fatal(err)
	}
	pdfBytes, err := os.ReadFile(filepath.Join(out, report.PDFName))
	if err != nil {
		t.Fatal(err)
	}
	pdf := strings.ReplaceAll(reporttest.PDFText(pdfBytes), "\n", " ")
	for _, w := range []string{fmt.Sprintf("%.4f", thr), "Ana Lima", "version 1", "tiny",
		"Per defect type", workstation.NameVersion()} {
		if !strings.Contains(string(html), w) {
			t.Errorf("report.html lacks %q", w)
		}
		if !strings.Contains(pdf, w) {
			t.Errorf("report.pdf lacks %q", w)
		}
	}
	if sum.Operator != "Ana Lima" || sum.ModelVersion != 1 || sum.Backbone != "tiny" || sum.WorkstationVersion != workstation.Version() || sum.Misses == nil {
		t.Errorf("summary.json header %+v", sum)
	}

	// A reviewer sets tile's threshold in the GUI (it goes into model 1's
	// record): eval and inspect decide with it from then on.
	st, err := storage.Open(proj, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.Model(1)
	if err != nil {
		t.Fatal(err)
	}
	th, _ := review.FromRecord(rec.Thresholds)
	th.Set("tile", 0.4321)
	if err := st.SetModelThresholds(1, th.Record()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if r := cli(t, env, "eval", "--project", proj, "--json", evalJSON, "--save=false", "--quiet", "--threads", "2"); r.code != 0 {
		t.Fatalf("eval: exit %d\n%s", r.code, r.stderr)
	}
	ev = evalReport{}
	readJSON(t, evalJSON, &ev)
	if ev.CategoryThresholds["tile"] != 0.4321 {
		t.Errorf("eval JSON after the edit: tile %v", ev.CategoryThresholds["tile"])
	}
	out2 := filepath.Join(dir, "out2")
	r = cli(t, env, "inspect", "--project", proj, "--input", filepath.Join(data, "tile"), "--out", out2, "--quiet", "--threads", "2")
	if r.code != 0 || !strings.Contains(r.stdout, "thresholds tile 0.4321") {
		t.Errorf("inspect after the edit: exit %d, %q", r.code, r.stdout)
	}
	if sum, err := inspection.ReadSummary(out2); err != nil || len(sum.Categories) != 1 || sum.Categories[0].Threshold != float64(float32(0.4321)) {
		t.Errorf("summary.json after the edit: %+v (%v)", sum.Categories, err)
	}
}

// A user without the MVTec layout trains from plain folders of good
// images, one category per folder, and inspects a plain folder as one of
// those categories, at its threshold.
func TestTrainFromPlainFolder(t *testing.T) {
	data, bb, env := fixture(t)
	dir := t.TempDir()
	proj := filepath.Join(dir, "line"+workstation.ProjectExt)
	train := func(folder, category string, extra ...string) result {
		args := append([]string{"train", "--project", proj, "--data", folder, "--label", "good", "--backbone", bb}, small...)
		args = append(args, extra...)
		if category != "" {
			args = append(args, "--category", category)
		}
		return cli(t, env, args...)
	}
	r := train(filepath.Join(data, "tile", "train", "good"), "widget")
	if r.code != 0 || !strings.Contains(r.stdout, "model 1 (dmad, unsupervised, 1 categories") || !strings.Contains(r.stdout, "widget ") {
		t.Fatalf("train from a plain folder: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "level=INFO") {
		t.Errorf("train logs INFO lines without --verbose:\n%s", r.stderr)
	}
	// A second folder adds a category; the model covers both. --verbose
	// shows the engine's Info lines (one per epoch).
	r = train(filepath.Join(data, "disc", "train", "good"), "gadget", "--verbose")
	if r.code != 0 || !strings.Contains(r.stdout, "model 2 (dmad, unsupervised, 2 categories") {
		t.Fatalf("train a second plain folder: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "level=INFO msg=\"mapper training\"") {
		t.Errorf("train --verbose logs no epochs:\n%s", r.stderr)
	}
	m := regexp.MustCompile(`gadget ([0-9.]+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("train output names no threshold for gadget: %q", r.stdout)
	}
	out := filepath.Join(dir, "out")
	r = cli(t, env, "inspect", "--project", proj, "--input", filepath.Join(data, "disc", "test", "good"), "--category", "gadget", "--out", out, "--quiet")
	if r.code != 0 || !strings.Contains(r.stdout, "4 images") || !strings.Contains(r.stdout, "thresholds gadget "+m[1]) {
		t.Fatalf("inspect --category: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	sum, err := inspection.ReadSummary(out)
	if err != nil || len(sum.Categories) != 1 || sum.Categories[0].Category != "gadget" || fmt.Sprintf("%.4f", sum.Categories[0].Threshold) != m[1] {
		t.Fatalf("summary of inspect --category: %+v, %v", sum.Categories, err)
	}

	// Without --category, a category the model does not know is judged at
	// the global threshold, and the user is told.
	r = cli(t, env, "inspect", "--project", proj, "--input", filepath.Join(data, "disc", "test", "good"), "--out", filepath.Join(dir, "out2"), "--quiet")
	if r.code != 0 || !strings.Contains(r.stderr, `model 2 has no category "disc"`) || !strings.Contains(r.stderr, "gadget, widget") {
		t.Errorf("inspect of an unknown category: exit %d %q", r.code, r.stderr)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"plain folder without a label", []string{"train", "--project", proj, "--data", filepath.Join(data, "tile", "train", "good")}, "--label good"},
		{"defect label", []string{"train", "--project", proj, "--data", filepath.Join(data, "tile", "train", "good"), "--label", "defect"}, "only be labelled good"},
		{"label on a dataset", []string{"train", "--project", proj, "--data", data, "--label", "good"}, "for a plain folder"},
		{"category the model does not know", []string{"inspect", "--project", proj, "--input", filepath.Join(data, "disc", "test", "good"), "--category", "nope", "--out", filepath.Join(dir, "x")}, "knows gadget, widget"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, env, tc.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q: want %d and %q", r.code, r.stderr, exitUsage, tc.want)
			}
		})
	}
}

// Projects and models named .dmad by earlier versions still open and
// import; export-model names its file .dmadmodel.
func TestLegacyDmadFiles(t *testing.T) {
	data, bb, env := fixture(t)
	dir := t.TempDir()
	old := filepath.Join(dir, "line1"+workstation.LegacyExt)
	r := cli(t, env, append([]string{"train", "--project", old, "--data", data, "--backbone", bb}, small...)...)
	if r.code != 0 {
		t.Fatalf("train into a .dmad project: exit %d %q", r.code, r.stderr)
	}
	for _, args := range [][]string{
		{"check", "--project", old},
		{"inspect", "--project", old, "--input", filepath.Join(data, "disc", "test", "good"), "--out", filepath.Join(dir, "out"), "--quiet"},
		{"export-model", "--project", old, "--out", filepath.Join(dir, "m")},
	} {
		if r := cli(t, env, args...); r.code != 0 {
			t.Errorf("%s of a .dmad project: exit %d %q", args[0], r.code, r.stderr)
		}
	}
	exported := filepath.Join(dir, "m"+workstation.ModelExt)
	if _, err := os.Stat(exported); err != nil {
		t.Fatalf("export-model --out m: %v", err)
	}
	legacyModel := filepath.Join(dir, "m"+workstation.LegacyExt)
	if err := os.Rename(exported, legacyModel); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "new"+workstation.ProjectExt)
	if r := cli(t, env, "import-model", "--project", fresh, "--in", legacyModel); r.code != 0 {
		t.Errorf("import of a .dmad model: exit %d %q", r.code, r.stderr)
	}
}

// --help lists basic flags, then advanced ones, as --flag VALUE with each
// default once, and examples; --version prints the one version.
func TestHelpAndVersion(t *testing.T) {
	for _, cmd := range []string{"inspect", "train"} {
		r := cli(t, nil, cmd, "--help")
		if r.code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, r.code)
		}
		h := r.stderr + r.stdout
		b, a := strings.Index(h, "Basic flags:"), strings.Index(h, "Advanced flags:")
		if b < 0 || a < b || !strings.Contains(h, "Examples:") || !strings.Contains(h, "  --project FILE") {
			t.Errorf("%s --help is not grouped:\n%s", cmd, h)
		}
		if regexp.MustCompile(`(?m)^\s+-[a-z]`).MatchString(h) {
			t.Errorf("%s --help shows a single-dash flag:\n%s", cmd, h)
		}
		for _, line := range strings.Split(h, "\n") {
			if strings.Count(line, "(default") > 1 {
				t.Errorf("%s --help repeats the default: %q", cmd, line)
			}
		}
	}
	if !strings.Contains(cli(t, nil, "inspect", "--help").stderr, "--threshold T") {
		t.Error("inspect --help does not name --threshold's value")
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		r := cli(t, nil, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "workstation "+workstation.Version()+"\n") {
			t.Errorf("%v: exit %d %q", args, r.code, r.stdout)
		}
	}
}
