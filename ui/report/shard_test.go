package report

import (
	"bytes"
	"context"
	"image"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmad/workstation/core/shard"
)

// core/shard reads and rewrites the scores.csv this package writes (it
// cannot import ui/report): a merge of one complete output must give back
// the very same file, overlay names included.
func TestScoresCSVRoundTripsThroughShardMerge(t *testing.T) {
	items := testItems()
	// Two categories, written in the engine's (category, path) order.
	for i := range items[3:] {
		items[3+i].Category = "zeta"
	}
	dir := t.TempDir()
	r := Report{Title: "t", Created: time.Now(), Threshold: 0.5, Items: items,
		LoadImage: func(Item) (image.Image, error) { return image.NewRGBA(image.Rect(0, 0, 8, 8)), nil }}
	if err := Write(context.Background(), dir, r, nil); err != nil {
		t.Fatal(err)
	}
	summary := `{"input": "in", "images": 6, "threshold": 0.5, "anomalous": 3, "normal": 3, "model_method": "dmad", "model_regime": "unsupervised", "shard": "0/1"}`
	if err := os.WriteFile(filepath.Join(dir, shard.SummaryName), []byte(summary), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "merged")
	sum, err := shard.Merge(context.Background(), out, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(dir, CSVName))
	got, _ := os.ReadFile(filepath.Join(out, shard.ScoresName))
	if !bytes.Equal(got, want) {
		t.Errorf("merged scores.csv:\n%s\nreport's:\n%s", got, want)
	}
	if sum.Images != 6 || sum.Anomalous != 3 {
		t.Errorf("merged summary %+v", sum)
	}
	ovs, _ := filepath.Glob(filepath.Join(out, OverlayDir, "*"+overlaySufix))
	if len(ovs) != len(items) {
		t.Errorf("%d overlays copied, want %d", len(ovs), len(items))
	}
}
