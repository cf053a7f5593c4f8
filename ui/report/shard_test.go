package report

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/core/shard"
	"github.com/dmad/workstation/ui/report/reporttest"
)

// core/shard reads and rewrites the scores.csv this package writes (it
// cannot import ui/report): a merge of shard outputs must give back the
// very same scores.csv as an unsharded run, overlay names included, and
// its report (FromOutput, WriteDocuments) the same header and tables.
func TestShardMergeGivesTheUnshardedReport(t *testing.T) {
	whole := testReport(0.5)
	// Two categories, each with good and defective images (a merge has
	// metrics only then, as an unsharded run).
	for _, i := range []int{0, 3, 4} {
		whole.Items[i].Category = "zeta"
	}
	whole.CategoryThresholds = map[string]float64{"zeta": 0.7}
	base := t.TempDir()
	wholeDir := filepath.Join(base, "whole")
	if err := Write(context.Background(), wholeDir, whole, nil); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for k := range 2 {
		part := whole
		part.Shard = shard.Spec{Index: k, Count: 2}.String()
		part.Items = nil
		for _, it := range whole.Items {
			rel, _ := filepath.Rel(input, it.Path)
			if shard.Of(rel, 2) == k {
				part.Items = append(part.Items, it)
			}
		}
		d := filepath.Join(base, part.Shard[:1])
		if err := Write(context.Background(), d, part, nil); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	out := filepath.Join(base, "merged")
	merged, err := shard.Merge(context.Background(), out, dirs)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(wholeDir, CSVName))
	got, _ := os.ReadFile(filepath.Join(out, CSVName))
	if !bytes.Equal(got, want) {
		t.Errorf("merged scores.csv:\n%s\nunsharded:\n%s", got, want)
	}
	r, err := FromOutput(merged.Summary, merged.Rows)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDocuments(out, r); err != nil {
		t.Fatal(err)
	}
	ws, _ := inspection.ReadSummary(wholeDir)
	ms, _ := inspection.ReadSummary(out)
	if ms.Project != ws.Project || ms.ModelVersion != ws.ModelVersion || ms.Operator != ws.Operator || ms.Fail != ws.Fail ||
		*ms.Misses != *ws.Misses || len(ms.Categories) != 2 || ms.Categories[1].Threshold != 0.7 || len(ms.DefectTypes) != len(ws.DefectTypes) {
		t.Errorf("merged summary %+v\nunsharded %+v", ms, ws)
	}
	wantHTML := readFile(t, filepath.Join(wholeDir, HTMLName))
	gotHTML := readFile(t, filepath.Join(out, HTMLName))
	gotPDF := strings.ReplaceAll(reporttest.PDFText([]byte(readFile(t, filepath.Join(out, PDFName)))), "\n", " ")
	// The tables: from "Per category" to the metrics.
	section := func(s string) string {
		i, j := strings.Index(s, "<h2>Per category"), strings.Index(s, "<h2>Metrics")
		if i < 0 || j < i {
			t.Fatalf("no tables in\n%s", s)
		}
		return s[i:j]
	}
	if section(gotHTML) != section(wantHTML) {
		t.Errorf("merged tables:\n%s\nunsharded:\n%s", section(gotHTML), section(wantHTML))
	}
	for _, w := range []string{"line1", "version 7", "ana", "zeta 0.7", "Merged from", "Per defect type", "1 of 2 caught"} {
		if !strings.Contains(gotHTML, w) || !strings.Contains(gotPDF, w) {
			t.Errorf("merged report.html or report.pdf lacks %q", w)
		}
	}
	ovs, _ := filepath.Glob(filepath.Join(out, OverlayDir, "*"+overlaySufix))
	if len(ovs) != len(whole.Items) {
		t.Errorf("%d overlays copied, want %d", len(ovs), len(whole.Items))
	}
}
