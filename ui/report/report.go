// Package report writes an inspection report: scores.csv, one heatmap
// overlay PNG per image, ROC/PR curve PNGs and an HTML summary with the
// metrics and the curves embedded. It imports no GUI toolkit.
package report

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dmad/workstation"
	"github.com/dmad/workstation/assets"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/metrics"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/ui/internal/curve"
	"github.com/dmad/workstation/ui/internal/plots"
)

// Item is one scored image of the report.
type Item struct {
	Path     string
	Category string
	Score    float64
	// Label is "good", "defect" or "" when unknown.
	Label      string
	Map        []float32
	MapW, MapH int
	// Threshold is the item's own decision threshold (its category's, see
	// core/review.Thresholds); 0 uses Report.Threshold.
	Threshold float64
}

// threshold is the decision threshold of it.
func (r Report) threshold(it Item) float64 {
	if it.Threshold != 0 {
		return it.Threshold
	}
	return r.Threshold
}

// Metrics of one category, as computed by the engine (its own type).
type Metrics = metrics.Summary

// Report is what gets written.
type Report struct {
	Title     string
	Created   time.Time
	Threshold float64
	Items     []Item
	// PerCategory metrics; empty for an unlabelled batch.
	PerCategory map[string]Metrics
	// LoadImage decodes an item's image for its overlay; nil skips overlays.
	LoadImage func(it Item) (image.Image, error)
	// LoadMask returns an item's ground-truth mask (nil, nil when it has
	// none); its contour is drawn on the overlay. nil skips contours.
	LoadMask func(it Item) (*image.Gray, error)
	// Opacity of the heatmap in the overlays (default 0.5).
	Opacity float64
}

// Files written into the output folder.
const (
	CSVName      = "scores.csv"
	HTMLName     = "report.html"
	ROCName      = "roc.png"
	PRName       = "pr.png"
	OverlayDir   = "overlays"
	overlaySufix = "_overlay.png"
)

// Write writes the report into dir (created if needed). report, when not
// nil, gets a progress.Report event after each overlay.
func Write(ctx context.Context, dir string, r Report, report progress.Func) error {
	if err := os.MkdirAll(filepath.Join(dir, OverlayDir), 0o755); err != nil {
		return fmt.Errorf("report: create %s: %w", dir, err)
	}
	if r.Opacity == 0 {
		r.Opacity = 0.5
	}
	// Overlays colour only what is above each image's threshold, in
	// threshold units shared by the whole report (as the GUI does).
	topNorm := 1.25
	for _, it := range r.Items {
		topNorm = math.Max(topNorm, heatmap.Normalise(it.Score, r.threshold(it)))
	}
	overlays := make([]string, len(r.Items))
	if r.LoadImage != nil {
		for i, it := range r.Items {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("report: %w", err)
			}
			img, err := r.LoadImage(it)
			if err != nil {
				return fmt.Errorf("report: load %s: %w", it.Path, err)
			}
			t := r.threshold(it)
			top := t * topNorm
			if t <= 0 {
				top = topNorm + t - 1
			}
			ov := heatmap.OverlayAbove(img, heatmap.PeakCalibrated(it.Map, it.Score), it.MapW, it.MapH, t, top, r.Opacity)
			if r.LoadMask != nil {
				mask, err := r.LoadMask(it)
				if err != nil {
					return fmt.Errorf("report: mask of %s: %w", it.Path, err)
				}
				if mask != nil && mask.Bounds().Size() == ov.Bounds().Size() {
					assets.DrawContour(ov, mask, color.RGBA{R: 0, G: 255, B: 0, A: 255})
				}
			}
			name := fmt.Sprintf("%04d_%s%s", i, strings.TrimSuffix(filepath.Base(it.Path), filepath.Ext(it.Path)), overlaySufix)
			if err := writePNG(filepath.Join(dir, OverlayDir, name), ov); err != nil {
				return err
			}
			overlays[i] = filepath.ToSlash(filepath.Join(OverlayDir, name))
			report.Send(progress.Event{Stage: progress.Report, Done: i + 1, Total: len(r.Items)})
		}
	}
	if err := writeCSV(filepath.Join(dir, CSVName), r, overlays); err != nil {
		return err
	}
	var rocPNG, prPNG []byte
	if rocImg, prImg, err := Curves(r.Items, 480, 360); err != nil {
		return fmt.Errorf("report: curves: %w", err)
	} else if rocImg != nil {
		if rocPNG, err = encodePNG(rocImg); err != nil {
			return err
		}
		if prPNG, err = encodePNG(prImg); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, ROCName), rocPNG, 0o644); err != nil {
			return fmt.Errorf("report: write %s: %w", ROCName, err)
		}
		if err := os.WriteFile(filepath.Join(dir, PRName), prPNG, 0o644); err != nil {
			return fmt.Errorf("report: write %s: %w", PRName, err)
		}
	}
	return writeHTML(filepath.Join(dir, HTMLName), r, overlays, rocPNG, prPNG)
}

// Curves draws the image-level ROC and PR curves, one series per category
// with both classes. It returns nils when no category has both classes.
func Curves(items []Item, w, h int) (roc, pr image.Image, err error) {
	byCat := map[string][]Item{}
	for _, it := range items {
		if it.Label != "" {
			byCat[it.Category] = append(byCat[it.Category], it)
		}
	}
	cats := make([]string, 0, len(byCat))
	for c := range byCat {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	var rocS, prS []plots.Series
	for _, c := range cats {
		scores := make([]float64, len(byCat[c]))
		labels := make([]bool, len(byCat[c]))
		for i, it := range byCat[c] {
			scores[i], labels[i] = it.Score, it.Label == "defect"
		}
		fpr, tpr, _ := curve.ROC(scores, labels)
		if fpr == nil {
			continue
		}
		rec, prec := curve.PR(scores, labels)
		rocS = append(rocS, plots.Series{Name: c, X: fpr, Y: tpr})
		prS = append(prS, plots.Series{Name: c, X: rec, Y: prec})
	}
	if len(rocS) == 0 {
		return nil, nil, nil
	}
	if roc, err = plots.Lines("Image ROC", "false-positive rate", "true-positive rate", rocS, w, h, true, true); err != nil {
		return nil, nil, err
	}
	if pr, err = plots.Lines("Image precision-recall", "recall", "precision", prS, w, h, true, false); err != nil {
		return nil, nil, err
	}
	return roc, pr, nil
}

func writeCSV(path string, r Report, overlays []string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: create %s: %w", path, err)
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"path", "category", "score", "decision", "label", "overlay"})
	for i, it := range r.Items {
		_ = w.Write([]string{it.Path, it.Category, strconv.FormatFloat(it.Score, 'g', 8, 64), Decision(it.Score, r.threshold(it)), it.Label, overlays[i]})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: close %s: %w", path, err)
	}
	return nil
}

// Decision is "fail" when score is at or above the threshold, else "pass".
func Decision(score, threshold float64) string {
	if score >= threshold {
		return "fail"
	}
	return "pass"
}

func writePNG(path string, img image.Image) error {
	b, err := encodePNG(img)
	if err != nil {
		return fmt.Errorf("report: encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}

func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("report: encode png: %w", err)
	}
	return buf.Bytes(), nil
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{"metric": metricText}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#eee}.fail{color:#b00;font-weight:bold}.pass{color:#070}img.o{width:160px}</style></head><body>
<h1>{{.Title}}</h1>
<p>Created {{.Created}} · {{.N}} images · threshold {{printf "%.4g" .Threshold}} · <b>{{.Fail}}</b> fail, <b>{{.Pass}}</b> pass</p>
{{if .Metrics}}<h2>Metrics</h2><table><tr><th>category</th><th>image AUROC</th><th>image AP</th><th>image F1max</th><th>pixel AUROC</th><th>pixel AP</th><th>PRO</th></tr>
{{range .Metrics}}<tr><td style="text-align:left">{{.Name}}</td><td>{{metric .M.ImageAUROC}}</td><td>{{metric .M.ImageAP}}</td><td>{{metric .M.ImageF1Max}}</td><td>{{metric .M.PixelAUROC}}</td><td>{{metric .M.PixelAP}}</td><td>{{metric .M.PRO}}</td></tr>
{{end}}</table>{{end}}
{{if .ROC}}<h2>Curves</h2><img alt="ROC" src="{{.ROC}}"> <img alt="PR" src="{{.PR}}">{{end}}
<h2>Images (highest score first)</h2><table><tr><th>#</th><th>image</th><th>category</th><th>score</th><th>decision</th><th>label</th><th>overlay</th></tr>
{{range $i, $r := .Rows}}<tr><td>{{$i}}</td><td style="text-align:left">{{$r.Path}}</td><td>{{$r.Category}}</td><td>{{printf "%.4g" $r.Score}}</td><td class="{{$r.Decision}}">{{$r.Decision}}</td><td>{{$r.Label}}</td><td>{{if $r.Overlay}}<a href="{{$r.Overlay}}"><img class="o" src="{{$r.Overlay}}"></a>{{end}}</td></tr>
{{end}}</table>
<footer><p style="color:#666;font-size:small">Written by {{.Generator}}</p></footer></body></html>
`))

type htmlRow struct {
	Path, Category, Decision, Label, Overlay string
	Score                                    float64
}

type htmlMetric struct {
	Name string
	M    Metrics
}

func writeHTML(path string, r Report, overlays []string, roc, pr []byte) error {
	rows := make([]htmlRow, len(r.Items))
	pass, fail := 0, 0
	for i, it := range r.Items {
		d := Decision(it.Score, r.threshold(it))
		if d == "fail" {
			fail++
		} else {
			pass++
		}
		rows[i] = htmlRow{Path: it.Path, Category: it.Category, Decision: d, Label: it.Label, Overlay: overlays[i], Score: it.Score}
	}
	sort.SliceStable(rows, func(a, b int) bool { return rows[a].Score > rows[b].Score })
	var ms []htmlMetric
	for name, m := range r.PerCategory {
		ms = append(ms, htmlMetric{name, m})
	}
	sort.Slice(ms, func(a, b int) bool { return ms[a].Name < ms[b].Name })
	data := map[string]any{
		"Title": r.Title, "Created": r.Created.Format(time.RFC3339), "N": len(r.Items),
		"Threshold": r.Threshold, "Pass": pass, "Fail": fail, "Metrics": ms, "Rows": rows,
		"ROC": template.URL(""), "PR": template.URL(""),
		"Generator": workstation.NameVersion(),
	}
	if len(roc) > 0 {
		// Safe: the URLs are data URIs of PNGs this package encoded.
		data["ROC"] = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(roc))
		data["PR"] = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(pr))
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: create %s: %w", path, err)
	}
	if err := page.Execute(f, data); err != nil {
		f.Close()
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: close %s: %w", path, err)
	}
	return nil
}

// metricText formats a metric for the HTML report: three decimals, or "n/a"
// for one that is undefined (NaN: a test set of one class), as summary.json
// writes null.
func metricText(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", v)
}
