package report

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmad/workstation"
	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/ui/report/reporttest"
)

const input = "/data/line1"

// testItems are six images of "widget": three good, three with a crack or
// a dent, scores 0, 0.2 … 1.
func testItems() []Item {
	var items []Item
	types := []string{"good", "good", "good", "crack", "crack", "dent"}
	for i := range 6 {
		label := "good"
		if i >= 3 {
			label = "defect"
		}
		m := make([]float32, 16)
		m[5] = float32(i) / 5
		items = append(items, Item{Path: filepath.Join(input, "widget", "test", types[i], "img"+string(rune('a'+i))+".png"),
			Category: "widget", DefectType: types[i], Score: float64(i) / 5, Label: label, Map: m, MapW: 4, MapH: 4})
	}
	return items
}

func testReport(threshold float64) Report {
	return Report{
		Title: "Inspection of line 1", Created: time.Date(2026, 11, 30, 9, 30, 0, 0, time.UTC), Project: "line1", Input: input,
		ModelVersion: 7, Method: "dmad", Regime: "unsupervised", Backbone: "mobilenet_v2_imagenet", Operator: "ana",
		Threshold: threshold, Items: testItems(),
		PerCategory: map[string]Metrics{"widget": {ImageAUROC: 1, ImageAP: 1, ImageF1Max: 1, PixelAUROC: math.NaN(), PixelAP: math.NaN(), PRO: math.NaN()}},
		LoadImage: func(Item) (image.Image, error) {
			img := image.NewRGBA(image.Rect(0, 0, 20, 10))
			img.Set(1, 1, color.White)
			return img, nil
		},
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The HTML and the PDF carry the same header, counts, per-category and
// per-defect-type tables; scores.csv and summary.json the same numbers.
func TestWrite(t *testing.T) {
	tests := []struct {
		name      string
		threshold float64
		// per-category threshold of widget (0: none)
		widget                         float64
		wantFail, wantMiss, wantFalse  int
		wantCounts, wantCrack, wantThr string
	}{
		{"middle threshold", 0.5, 0, 3, 0, 0, "6 images: 3 pass, 3 fail; 0 missed defects, 0 false alarms", "2 of 2 caught", "0.5000"},
		{"low threshold", 0.1, 0, 5, 0, 2, "6 images: 1 pass, 5 fail; 0 missed defects, 2 false alarms", "2 of 2 caught", "0.1000"},
		{"high threshold", 2, 0, 0, 3, 0, "6 images: 6 pass, 0 fail; 3 missed defects, 0 false alarms", "0 of 2 caught", "2.0000"},
		{"the category's own threshold wins", 2, 0.7, 2, 1, 0, "6 images: 4 pass, 2 fail; 1 missed defects, 0 false alarms", "1 of 2 caught", "0.7000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := testReport(tt.threshold)
			if tt.widget != 0 {
				r.CategoryThresholds = map[string]float64{"widget": tt.widget}
			}
			calls := 0
			if err := Write(context.Background(), dir, r, func(e progress.Event) {
				if e.Stage == progress.Report {
					calls++
				}
			}); err != nil {
				t.Fatal(err)
			}
			if calls != 6 {
				t.Errorf("progress called %d times, want 6", calls)
			}
			rows, err := inspection.ReadScores(filepath.Join(dir, CSVName))
			if err != nil {
				t.Fatal(err)
			}
			fails := 0
			for i, row := range rows {
				if row.Decision == "fail" {
					fails++
				}
				if row.Item != itoa(i+1) || !strings.HasPrefix(filepath.Base(row.Overlay), "000"+itoa(i+1)+"_") {
					t.Errorf("row %d is item %s with overlay %s: want numbered from 1", i, row.Item, row.Overlay)
				}
				if row.Threshold != inspection.FormatFloat(r.ThresholdOf("widget")) {
					t.Errorf("row %d threshold %s", i, row.Threshold)
				}
				f, err := os.Open(filepath.Join(dir, row.Overlay))
				if err != nil {
					t.Fatalf("overlay %s: %v", row.Overlay, err)
				}
				cfg, err := png.DecodeConfig(f)
				f.Close()
				// A 20×10 image is drawn 480 wide with a banner and a legend.
				if err != nil || cfg.Width != overlayMinSide || cfg.Height <= 240 {
					t.Errorf("overlay %s is %dx%d (%v), want %d wide with banner and legend", row.Overlay, cfg.Width, cfg.Height, err, overlayMinSide)
				}
			}
			if fails != tt.wantFail {
				t.Errorf("%d fail decisions, want %d", fails, tt.wantFail)
			}
			sum, err := inspection.ReadSummary(dir)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Fail != tt.wantFail || sum.Misses == nil || *sum.Misses != tt.wantMiss || *sum.FalseAlarms != tt.wantFalse ||
				sum.Project != "line1" || sum.ModelVersion != 7 || sum.Operator != "ana" || sum.Backbone != "mobilenet_v2_imagenet" ||
				sum.WorkstationVersion != workstation.Version() || len(sum.DefectTypes) != 3 || !sum.Created.Equal(r.Created) {
				t.Errorf("summary.json %+v", sum)
			}
			html := readFile(t, filepath.Join(dir, HTMLName))
			// Lines the PDF wraps read as one.
			pdf := strings.ReplaceAll(reporttest.PDFText([]byte(readFile(t, filepath.Join(dir, PDFName)))), "\n", " ")
			want := []string{
				"Inspection of line 1", "line1", "version 7 · dmad · unsupervised", "mobilenet_v2_imagenet", "2026-11-30 09:30:00 UTC", "ana",
				workstation.NameVersion(), tt.wantCounts,
				"Per category", "Per defect type", "crack", "dent", tt.wantCrack, tt.wantThr,
				"widget/test/crack/imgd.png", // relative to the inspected folder
				"n/a",
			}
			for _, w := range want {
				if !strings.Contains(html, w) {
					t.Errorf("report.html lacks %q", w)
				}
				// The PDF's text is cp1252: the middle dot is one byte.
				if wp := strings.ReplaceAll(w, "·", "\xb7"); !strings.Contains(pdf, wp) {
					t.Errorf("report.pdf lacks %q", w)
				}
			}
			if strings.Contains(html, input+"/widget") {
				t.Error("report.html shows absolute image paths")
			}
			if !strings.Contains(html, "<td>1</td>") || strings.Contains(html, "<td>0</td><td class=\"l\">widget") {
				t.Error("report.html's rows are not numbered from 1")
			}
			for _, name := range []string{ROCName, PRName, LegendName} {
				if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// A reviewer's override is the final verdict, shown with who and when in
// every output.
func TestWriteOverride(t *testing.T) {
	dir := t.TempDir()
	r := testReport(0.5)
	at := time.Date(2026, 11, 30, 10, 15, 0, 0, time.UTC)
	r.Items[5].Override = &Override{Verdict: inspection.Pass, By: "bea", At: at} // imgf (dent, 1.0) accepted
	if err := Write(context.Background(), dir, r, nil); err != nil {
		t.Fatal(err)
	}
	rows, err := inspection.ReadScores(filepath.Join(dir, CSVName))
	if err != nil {
		t.Fatal(err)
	}
	var last inspection.Row
	for _, row := range rows {
		if row.DefectType == "dent" {
			last = row
		}
	}
	if last.DefectType != "dent" || last.Decision != "fail" || last.Override != "pass" || last.OverrideBy != "bea" || last.OverrideAt != at.Format(time.RFC3339) {
		t.Errorf("overridden row %+v", last)
	}
	sum, _ := inspection.ReadSummary(dir)
	if sum.Fail != 2 || sum.Overridden != 1 || *sum.Misses != 1 {
		t.Errorf("summary counts %+v", sum.Counts)
	}
	html := readFile(t, filepath.Join(dir, HTMLName))
	pdf := strings.ReplaceAll(reporttest.PDFText([]byte(readFile(t, filepath.Join(dir, PDFName)))), "\n", " ")
	for _, w := range []string{"pass by bea 2026-11-30 10:15", "verdicts changed by a reviewer: 1", "miss"} {
		if !strings.Contains(html, w) || !strings.Contains(pdf, w) {
			t.Errorf("report.html or report.pdf lacks %q", w)
		}
	}
}

func TestWriteUnlabelled(t *testing.T) {
	dir := t.TempDir()
	items := testItems()
	for i := range items {
		items[i].Label, items[i].DefectType = "", ""
	}
	if err := Write(context.Background(), dir, Report{Title: "x", Items: items, Threshold: 0.5}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ROCName)); !os.IsNotExist(err) {
		t.Errorf("ROC written for an unlabelled batch (err %v)", err)
	}
	sum, err := inspection.ReadSummary(dir)
	if err != nil || sum.Misses != nil || sum.DefectTypes != nil || sum.Fail != 3 {
		t.Errorf("unlabelled summary %+v, %v", sum, err)
	}
	js := readFile(t, filepath.Join(dir, SummaryName))
	if !strings.Contains(js, `"misses": null`) {
		t.Errorf("summary.json of an unlabelled batch:\n%s", js)
	}
	if html := readFile(t, filepath.Join(dir, HTMLName)); strings.Contains(html, "Per defect type") {
		t.Error("an unlabelled report has a per-defect-type table")
	}
}

func TestWriteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := Report{Items: testItems(), LoadImage: func(Item) (image.Image, error) { return image.NewGray(image.Rect(0, 0, 2, 2)), nil }}
	if err := Write(ctx, t.TempDir(), r, nil); err == nil {
		t.Error("cancelled Write returned nil")
	}
}

// An undefined metric (a test set of one class) reads "n/a" in the HTML
// report, not "NaN"; defined ones keep three decimals.
func TestWriteUndefinedMetric(t *testing.T) {
	dir := t.TempDir()
	m := Metrics{ImageAUROC: math.NaN(), ImageAP: math.NaN(), ImageF1Max: math.NaN(), PixelAUROC: 0.91234, PixelAP: 0.5, PRO: 0.25}
	r := Report{Title: "x", Items: testItems(), Threshold: 0.5, PerCategory: map[string]Metrics{"bottle": m}}
	if err := Write(context.Background(), dir, r, nil); err != nil {
		t.Fatal(err)
	}
	html := readFile(t, filepath.Join(dir, HTMLName))
	if strings.Contains(html, "NaN") || !strings.Contains(html, "<td>n/a</td>") || !strings.Contains(html, "<td>0.912</td>") {
		t.Errorf("metrics row of report.html:\n%s", html)
	}
}

// summary.json is written last: an output without it is incomplete (here
// report.pdf cannot be written).
func TestSummaryWrittenLast(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, PDFName), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), dir, testReport(0.5), nil); err == nil || !strings.Contains(err.Error(), PDFName) {
		t.Fatalf("Write with report.pdf a folder = %v, want an error naming it", err)
	}
	if _, err := os.Stat(filepath.Join(dir, SummaryName)); !os.IsNotExist(err) {
		t.Errorf("summary.json of an incomplete output: %v", err)
	}
}
