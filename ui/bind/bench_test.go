package bind

import (
	"context"
	"fmt"
	"image"
	"path/filepath"
	"testing"

	"github.com/dmad/workstation/ui"
)

// BenchmarkImages lists a 2,000-image project the way the Data and Annotate
// screens do on every reload (one record read and mask check per image).
func BenchmarkImages(b *testing.B) {
	p := newTestProject(b, newTestEngine(b))
	const n = 2000
	src := b.TempDir()
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	recs := make([]ui.ImageRecord, n)
	for i := range recs {
		path := filepath.Join(src, fmt.Sprintf("%05d.png", i))
		writePNG(b, path, img)
		recs[i] = ui.ImageRecord{Path: path, Category: "c", Split: ui.SplitTrain, Label: ui.LabelGood}
	}
	if _, err := p.AddImages(context.Background(), recs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		imgs, err := p.Images()
		if err != nil || len(imgs) != n {
			b.Fatalf("%d images, %v", len(imgs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/n, "µs/image")
}
