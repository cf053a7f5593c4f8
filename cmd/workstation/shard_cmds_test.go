package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/core/shard"
	"github.com/dmad/workstation/ui/report"
)

// trainTiny trains an unsupervised model on the fixture into a new project.
func trainTiny(t *testing.T, data, bb string, env []string) string {
	t.Helper()
	proj := filepath.Join(t.TempDir(), "p.db")
	r := cli(t, env, append([]string{"train", "--project", proj, "--data", data, "--backbone", bb}, small...)...)
	if r.code != 0 {
		t.Fatalf("train: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return proj
}

func readSummary(t *testing.T, dir string) inspection.Summary {
	t.Helper()
	s, err := inspection.ReadSummary(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Three shard processes run at once on the same project file (opened
// read-only by each), merged, give the unsharded run's scores.csv byte for
// byte and its counts, image and pixel metrics.
func TestInspectShardsMergeToUnshardedRun(t *testing.T) {
	data, bb, env := fixture(t)
	proj := trainTiny(t, data, bb, env)
	dir := t.TempDir()
	common := []string{"--project", proj, "--input", data, "--quiet", "--threads", "1"}

	whole := filepath.Join(dir, "whole")
	const n = 3
	cmds := []*exec.Cmd{exec.Command(binary, append([]string{"inspect", "--out", whole}, common...)...)}
	var shardDirs []string
	for i := 0; i < n; i++ {
		d := filepath.Join(dir, fmt.Sprintf("shard-%d", i))
		shardDirs = append(shardDirs, d)
		cmds = append(cmds, exec.Command(binary, append([]string{"inspect", "--shard", fmt.Sprintf("%d/%d", i, n), "--out", d}, common...)...))
	}
	outs := make([]*bytes.Buffer, len(cmds))
	for i, c := range cmds {
		c.Env = append(os.Environ(), env...)
		outs[i] = &bytes.Buffer{}
		c.Stdout, c.Stderr = outs[i], outs[i]
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("%v: %v\n%s", c.Args, err, outs[i])
		}
	}
	total := 0
	for i, d := range shardDirs {
		s := readSummary(t, d)
		if s.Shard != fmt.Sprintf("%d/%d", i, n) || s.Images == 0 {
			t.Fatalf("shard %d summary: %+v", i, s)
		}
		total += s.Images
	}

	merged := filepath.Join(dir, "merged")
	r := cli(t, env, append([]string{"report", "merge", "--out", merged}, shardDirs...)...)
	if r.code != 0 {
		t.Fatalf("report merge: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want, err := os.ReadFile(filepath.Join(whole, shard.ScoresName))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(merged, shard.ScoresName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("merged scores.csv differs from the unsharded run's:\n%s\nunsharded:\n%s", got, want)
	}
	ws, ms := readSummary(t, whole), readSummary(t, merged)
	if ms.Images != ws.Images || total != ws.Images || ms.Fail != ws.Fail || ms.Pass != ws.Pass || ms.Threshold != ws.Threshold ||
		ms.Project != ws.Project || ms.ModelVersion != ws.ModelVersion || ms.Backbone != ws.Backbone || len(ms.DefectTypes) != len(ws.DefectTypes) {
		t.Fatalf("merged summary %+v, unsharded %+v (shards hold %d images)", ms, ws, total)
	}
	if len(ws.PerCategory) != 2 || len(ms.PerCategory) != 2 {
		t.Fatalf("per-category metrics: unsharded %v, merged %v", ws.PerCategory, ms.PerCategory)
	}
	for c, w := range ws.PerCategory {
		m := ms.PerCategory[c]
		if m.ImageAUROC != w.ImageAUROC || m.ImageAP != w.ImageAP || m.ImageF1Max != w.ImageF1Max {
			t.Errorf("category %s: merged image metrics %+v, unsharded %+v", c, m, w)
		}
		// The pixel metrics too, from the shards' maps.bin.
		if math.IsNaN(w.PixelAUROC) || m.PixelAUROC != w.PixelAUROC || m.PixelAP != w.PixelAP || m.PRO != w.PRO {
			t.Errorf("category %s: merged pixel metrics %v %v %v, unsharded %v %v %v", c,
				m.PixelAUROC, m.PixelAP, m.PRO, w.PixelAUROC, w.PixelAP, w.PRO)
		}
	}
	for _, d := range shardDirs {
		// maps.bin is complete before summary.json, which a merge job waits for.
		maps, err := os.Stat(filepath.Join(d, inspection.MapsName))
		if err != nil {
			t.Errorf("shard output without anomaly maps: %v", err)
			continue
		}
		if sum, err := os.Stat(filepath.Join(d, shard.SummaryName)); err != nil || maps.ModTime().After(sum.ModTime()) {
			t.Errorf("%s: %s written after %s (%v)", d, inspection.MapsName, shard.SummaryName, err)
		}
	}
	// The merged report has the unsharded run's tables.
	tables := func(dir string) string {
		b, err := os.ReadFile(filepath.Join(dir, report.HTMLName))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i, j := strings.Index(s, "<h2>Per category"), strings.Index(s, "<h2>Metrics")
		if i < 0 || j < i {
			t.Fatalf("%s/report.html has no tables", dir)
		}
		return s[i:j]
	}
	if tw, tm := tables(whole), tables(merged); tw != tm || !strings.Contains(tm, "Per defect type") {
		t.Errorf("merged report's tables:\n%s\nunsharded:\n%s", tm, tw)
	}
	if _, err := os.Stat(filepath.Join(merged, report.PDFName)); err != nil {
		t.Error(err)
	}
	ovs, _ := filepath.Glob(filepath.Join(merged, shard.OverlayDir, "*.png"))
	if len(ovs) != ws.Images {
		t.Errorf("%d overlays in the merged output, want %d", len(ovs), ws.Images)
	}
}

func TestInspectShardFlagErrors(t *testing.T) {
	for _, bad := range []string{"3/3", "x", "1/0"} {
		r := cli(t, nil, "inspect", "--project", "p.db", "--input", "in", "--out", "out", "--shard", bad)
		if r.code != exitUsage {
			t.Errorf("--shard %s: exit %d, want %d\n%s", bad, r.code, exitUsage, r.stderr)
		}
	}
	r := cli(t, nil, "report", "merge", "--out", t.TempDir())
	if r.code != exitUsage {
		t.Errorf("report merge with no shard: exit %d, want %d", r.code, exitUsage)
	}
}
