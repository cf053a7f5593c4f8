package pipeline

import (
	"context"
	"fmt"
	"image"
	"math"
	"sort"

	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/metrics"
)

// Scored is one evaluated test image.
type Scored struct {
	Path      string
	Category  string
	Anomalous bool
	MaskPath  string // "" for normal images
	Result    ImageResult
}

// Evaluate computes per-category metrics and their mean. grid is the patch
// grid; cfg the encoder geometry, so maps and masks line up.
func Evaluate(ctx context.Context, items []Scored, h0, w0 int, cfg encoder.Config) (map[string]metrics.Summary, metrics.Summary, error) {
	return EvaluateMasks(ctx, items, h0, w0, cfg, maskFiles(items))
}

// maskFiles reads item i's mask from its MaskPath (nil without one).
func maskFiles(items []Scored) func(i int) (*image.Gray, error) {
	return func(i int) (*image.Gray, error) {
		if items[i].MaskPath == "" {
			return nil, nil
		}
		return imageio.LoadMask(items[i].MaskPath)
	}
}

// EvaluateMasks is Evaluate with masks from maskOf (nil: no defect pixels),
// e.g. masks stored in a project.
func EvaluateMasks(ctx context.Context, items []Scored, h0, w0 int, cfg encoder.Config, maskOf func(i int) (*image.Gray, error)) (map[string]metrics.Summary, metrics.Summary, error) {
	return evaluateMasks(ctx, items, h0, w0, cfg, MapSigma, maskOf)
}

// evaluateMasks is EvaluateMasks with maps smoothed by sigma.
func evaluateMasks(ctx context.Context, items []Scored, h0, w0 int, cfg encoder.Config, sigma float64, maskOf func(i int) (*image.Gray, error)) (map[string]metrics.Summary, metrics.Summary, error) {
	cfg = cfg.WithDefaults()
	size := cfg.InputSize
	byCat := map[string][]int{}
	for i, it := range items {
		byCat[it.Category] = append(byCat[it.Category], i)
	}
	cats := make([]string, 0, len(byCat))
	for c := range byCat {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	per := map[string]metrics.Summary{}
	var mean metrics.Summary
	for _, cat := range cats {
		idx := byCat[cat]
		scores := make([]float32, len(idx))
		labels := make([]bool, len(idx))
		maps := make([][]float32, len(idx))
		for k, i := range idx {
			if err := ctx.Err(); err != nil {
				return nil, metrics.Summary{}, err
			}
			scores[k] = items[i].Result.Score
			labels[k] = items[i].Anomalous
			maps[k] = heatmap.AnomalyMap(items[i].Result.Patches, h0, w0, size, size, sigma)
		}
		im := metrics.Image(scores, labels)
		px, err := CategoryPixels(ctx, maps, size, func(k int) ([]bool, error) {
			g, err := maskOf(idx[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", items[idx[k]].Path, err)
			}
			if g == nil {
				return nil, nil
			}
			return MaskAt(g, cfg), nil
		})
		if err != nil {
			return nil, metrics.Summary{}, fmt.Errorf("evaluate %s: %w", cat, err)
		}
		m := metrics.Summary{ImageAUROC: im.AUROC, ImageAP: im.AP, ImageF1Max: im.F1Max,
			PixelAUROC: px.AUROC, PixelAP: px.AP, PRO: px.PRO}
		per[cat] = m
		mean.ImageAUROC += m.ImageAUROC / float64(len(cats))
		mean.ImageAP += m.ImageAP / float64(len(cats))
		mean.ImageF1Max += m.ImageF1Max / float64(len(cats))
		mean.PixelAUROC += nanZero(m.PixelAUROC) / float64(len(cats))
		mean.PixelAP += nanZero(m.PixelAP) / float64(len(cats))
		mean.PRO += nanZero(m.PRO) / float64(len(cats))
	}
	return per, mean, nil
}

// CategoryPixels computes the pixel metrics of one category's anomaly maps
// (size×size each, see Map) against their masks (maskOf(k): the k-th map's
// mask in the same geometry, nil when it has no defect pixels). The
// histogram spans the category's score range, so the result depends on
// the whole set of maps, not on their order: a merge of shard outputs that
// calls it with the same maps gets the same metrics.
func CategoryPixels(ctx context.Context, maps [][]float32, size int, maskOf func(k int) ([]bool, error)) (metrics.PixelScores, error) {
	lo, hi := metrics.Range(maps...)
	acc, err := metrics.NewPixelAccumulator(lo, hi, 0)
	if err != nil {
		return metrics.PixelScores{}, err
	}
	for k := range maps {
		if err := ctx.Err(); err != nil {
			return metrics.PixelScores{}, err
		}
		mask, err := maskOf(k)
		if err != nil {
			return metrics.PixelScores{}, err
		}
		if err := acc.Add(maps[k], mask, size, size); err != nil {
			return metrics.PixelScores{}, err
		}
	}
	return acc.Scores(), nil
}

func nanZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// MaskAt maps a mask (the size of its image) into the encoder's input
// geometry (InputSize², plain resize or resize + centre crop), sampling the
// nearest source pixel; true marks defect pixels.
func MaskAt(g *image.Gray, cfg encoder.Config) []bool {
	cfg = cfg.WithDefaults()
	size := cfg.InputSize
	b := g.Bounds()
	w, h := float64(b.Dx()), float64(b.Dy())
	sx, sy := w/float64(size), h/float64(size)
	ox, oy := 0.0, 0.0
	if cfg.Crop {
		scale := float64(cfg.ResizeTo) / math.Min(w, h) // resized = original·scale
		rw, rh := w*scale, h*scale
		sx, sy = 1/scale, 1/scale
		ox, oy = (rw-float64(size))/2, (rh-float64(size))/2
	}
	out := make([]bool, size*size)
	for y := range size {
		yy := int((float64(y) + 0.5 + oy) * sy)
		yy = min(max(yy, 0), b.Dy()-1)
		for x := range size {
			xx := int((float64(x) + 0.5 + ox) * sx)
			xx = min(max(xx, 0), b.Dx()-1)
			out[y*size+x] = g.GrayAt(b.Min.X+xx, b.Min.Y+yy).Y > 127
		}
	}
	return out
}

func loadMask(path string) (*image.Gray, error) {
	if path == "" {
		return nil, fmt.Errorf("seen anomaly has no mask file")
	}
	return imageio.LoadMask(path)
}
