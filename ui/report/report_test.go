package report

import (
	"context"
	"encoding/csv"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmad/workstation"
	"github.com/dmad/workstation/core/progress"
)

func testItems() []Item {
	var items []Item
	for i := range 6 {
		label := "good"
		if i >= 3 {
			label = "defect"
		}
		m := make([]float32, 16)
		m[5] = float32(i) / 5
		items = append(items, Item{Path: filepath.Join("in", "img"+string(rune('a'+i))+".png"), Category: "widget", Score: float64(i) / 5, Label: label, Map: m, MapW: 4, MapH: 4})
	}
	return items
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name      string
		threshold float64
		wantFail  int
	}{
		{"middle threshold", 0.5, 3},
		{"low threshold", 0, 6},
		{"high threshold", 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := Report{
				Title: "batch", Created: time.Now(), Threshold: tt.threshold, Items: testItems(),
				PerCategory: map[string]Metrics{"widget": {ImageAUROC: 1}},
				LoadImage: func(Item) (image.Image, error) {
					img := image.NewRGBA(image.Rect(0, 0, 20, 10))
					img.Set(1, 1, color.White)
					return img, nil
				},
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
			f, err := os.Open(filepath.Join(dir, CSVName))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows, err := csv.NewReader(f).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 7 {
				t.Fatalf("csv has %d rows, want header + 6", len(rows))
			}
			fails := 0
			for _, row := range rows[1:] {
				if row[3] == "fail" {
					fails++
				}
				if _, err := os.Stat(filepath.Join(dir, row[5])); err != nil {
					t.Errorf("overlay %s: %v", row[5], err)
				}
			}
			if fails != tt.wantFail {
				t.Errorf("%d fail decisions, want %d", fails, tt.wantFail)
			}
			html, err := os.ReadFile(filepath.Join(dir, HTMLName))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"data:image/png;base64,", "widget", "1.000", "<b>" + string(rune('0'+tt.wantFail)) + "</b> fail", "Written by " + workstation.NameVersion()} {
				if !strings.Contains(string(html), want) {
					t.Errorf("report.html lacks %q", want)
				}
			}
			for _, name := range []string{ROCName, PRName} {
				if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestWriteUnlabelled(t *testing.T) {
	dir := t.TempDir()
	items := testItems()
	for i := range items {
		items[i].Label = ""
	}
	if err := Write(context.Background(), dir, Report{Title: "x", Items: items, Threshold: 0.5}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ROCName)); !os.IsNotExist(err) {
		t.Errorf("ROC written for an unlabelled batch (err %v)", err)
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
	html, err := os.ReadFile(filepath.Join(dir, HTMLName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(html), "NaN") || !strings.Contains(string(html), "<td>n/a</td>") || !strings.Contains(string(html), "<td>0.912</td>") {
		t.Errorf("metrics row of report.html:\n%s", html)
	}
}
