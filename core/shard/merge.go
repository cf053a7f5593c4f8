package shard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/core/metrics"
	"github.com/dmad/workstation/core/pipeline"
)

// Files of an inspection output folder (see `workstation inspect`).
const (
	ScoresName  = inspection.ScoresName
	SummaryName = inspection.SummaryName
	OverlayDir  = inspection.OverlayDir
)

// Output is an inspection output folder's scores and summary.
type Output struct {
	Dir     string
	Rows    []inspection.Row
	Summary inspection.Summary
	// Maps are the run's anomaly maps (maps.bin), nil when it has none.
	Maps *inspection.PixelMaps
}

// ReadOutput reads scores.csv and summary.json of the output folder dir.
func ReadOutput(dir string) (Output, error) {
	o := Output{Dir: dir}
	var err error
	if o.Summary, err = inspection.ReadSummary(dir); err != nil {
		return o, fmt.Errorf("read shard output: %w", err)
	}
	if o.Rows, err = inspection.ReadScores(filepath.Join(dir, ScoresName)); err != nil {
		return o, fmt.Errorf("read shard output: %w", err)
	}
	switch m, err := inspection.ReadMaps(dir); {
	case err == nil:
		o.Maps = &m
	case !errors.Is(err, os.ErrNotExist):
		return o, fmt.Errorf("read shard output: %w", err)
	}
	return o, nil
}

// Combine merges shard outputs into the output an unsharded run over the
// same input writes: all rows, in the report's order (category, then path),
// numbered from 1 in that order with overlay names to match; the counts,
// tables and image metrics recomputed from the rows, the pixel metrics
// from the shards' anomaly maps (null, with the reason, when a shard has
// none); the header (project,
// model, thresholds, operator) of the first shard. The shards must agree
// on input, model and thresholds; no image may be in two shards; when the
// shards name themselves (Summary.Shard), all n of them must be there.
func Combine(ctx context.Context, parts []Output) (Output, error) {
	if len(parts) == 0 {
		return Output{}, errors.New("merge: no shard outputs")
	}
	first := parts[0].Summary
	var rows []inspection.Row
	origin := map[string]string{}
	shards := map[int]string{}
	count := 0
	for _, p := range parts {
		s := p.Summary
		if s.Input != first.Input || s.Threshold != first.Threshold || !maps.Equal(s.CategoryThresholds, first.CategoryThresholds) ||
			s.ModelVersion != first.ModelVersion || s.ModelMethod != first.ModelMethod || s.ModelRegime != first.ModelRegime {
			return Output{}, fmt.Errorf("merge: %s was made with input %q, threshold %v %v, model %d (%s/%s); %s with %q, %v %v, %d (%s/%s): not shards of one run",
				p.Dir, s.Input, s.Threshold, s.CategoryThresholds, s.ModelVersion, s.ModelMethod, s.ModelRegime,
				parts[0].Dir, first.Input, first.Threshold, first.CategoryThresholds, first.ModelVersion, first.ModelMethod, first.ModelRegime)
		}
		if len(p.Rows) != s.Images {
			return Output{}, fmt.Errorf("merge: %s has %d rows in %s but %d images in %s", p.Dir, len(p.Rows), ScoresName, s.Images, SummaryName)
		}
		if s.Shard != "" {
			sp, err := Parse(s.Shard)
			if err != nil {
				return Output{}, fmt.Errorf("merge: %s: %w", p.Dir, err)
			}
			if count != 0 && sp.Count != count {
				return Output{}, fmt.Errorf("merge: %s is shard %s, others are of %d", p.Dir, s.Shard, count)
			}
			count = sp.Count
			if prev, ok := shards[sp.Index]; ok {
				return Output{}, fmt.Errorf("merge: %s and %s are both shard %s", prev, p.Dir, s.Shard)
			}
			shards[sp.Index] = p.Dir
		}
		for _, r := range p.Rows {
			if prev, ok := origin[r.Path]; ok {
				return Output{}, fmt.Errorf("merge: %s is in both %s and %s: overlapping shards", r.Path, prev, p.Dir)
			}
			origin[r.Path] = p.Dir
			if r.Overlay != "" {
				r.Overlay = filepath.Join(p.Dir, filepath.FromSlash(r.Overlay)) // source, renamed by Write
			}
			rows = append(rows, r)
		}
	}
	if count != 0 && len(shards) != count {
		var missing []string
		for i := 0; i < count; i++ {
			if _, ok := shards[i]; !ok {
				missing = append(missing, Spec{i, count}.String())
			}
		}
		if len(missing) > 0 {
			return Output{}, fmt.Errorf("merge: shard(s) %s missing", strings.Join(missing, ", "))
		}
	}
	sort.SliceStable(rows, func(a, b int) bool {
		if rows[a].Category != rows[b].Category {
			return rows[a].Category < rows[b].Category
		}
		return rows[a].Path < rows[b].Path
	})
	for i := range rows {
		rows[i].Item = strconv.Itoa(i + 1)
	}
	sum := first
	sum.Shard, sum.PerCategory, sum.MergedFrom = "", nil, nil
	for _, p := range parts {
		sum.MergedFrom = append(sum.MergedFrom, p.Dir)
	}
	sum.SetCounts(rows)
	// The metrics exist where an unsharded run has them: every image
	// labelled, every category with good and defective images.
	if labelledBothClasses(rows) {
		per, err := imageMetrics(rows)
		if err != nil {
			return Output{}, err
		}
		if err := pixelMetrics(ctx, parts, rows, per); err != nil {
			return Output{}, err
		}
		sum.PerCategory = per
	}
	return Output{Rows: rows, Summary: sum}, nil
}

// labelledBothClasses reports whether every row is labelled and every
// category has good and defective rows.
func labelledBothClasses(rows []inspection.Row) bool {
	type count struct{ good, defect int }
	per := map[string]count{}
	for _, r := range rows {
		c := per[r.Category]
		switch r.Label {
		case inspection.LabelGood:
			c.good++
		case inspection.LabelDefect:
			c.defect++
		default:
			return false
		}
		per[r.Category] = c
	}
	for _, c := range per {
		if c.good == 0 || c.defect == 0 {
			return false
		}
	}
	return len(per) > 0
}

// pixelMetrics fills the pixel metrics of per from the parts' anomaly maps,
// category by category as the engine does (pipeline.CategoryPixels over
// the same maps gives the same numbers). When a part has no maps, or they
// do not cover its rows, the pixel metrics stay null with
// inspection.ReasonNoMaps.
func pixelMetrics(ctx context.Context, parts []Output, rows []inspection.Row, per map[string]inspection.Metrics) error {
	byPath := map[string]*inspection.ImageMap{}
	var geo *inspection.PixelMaps
	complete := true
	for _, p := range parts {
		if p.Maps == nil {
			complete = false
			break
		}
		if geo == nil {
			geo = p.Maps
		} else if p.Maps.GridH != geo.GridH || p.Maps.GridW != geo.GridW || p.Maps.Size != geo.Size {
			return fmt.Errorf("merge: %s has %d×%d anomaly maps at %d px, %s %d×%d at %d px: not shards of one run",
				p.Dir, p.Maps.GridH, p.Maps.GridW, p.Maps.Size, parts[0].Dir, geo.GridH, geo.GridW, geo.Size)
		}
		for i := range p.Maps.Images {
			byPath[p.Maps.Images[i].Path] = &p.Maps.Images[i]
		}
	}
	for _, r := range rows {
		if byPath[r.Path] == nil {
			complete = false
		}
	}
	if !complete {
		for c, m := range per {
			m.PixelReason = inspection.ReasonNoMaps
			per[c] = m
		}
		return nil
	}
	byCat := map[string][]*inspection.ImageMap{}
	for _, r := range rows {
		byCat[r.Category] = append(byCat[r.Category], byPath[r.Path])
	}
	for c, ims := range byCat {
		maps := make([][]float32, len(ims))
		for k, im := range ims {
			maps[k] = pipeline.Map(im.Patches, geo.GridH, geo.GridW, geo.Size, geo.Size)
		}
		px, err := pipeline.CategoryPixels(ctx, maps, geo.Size, func(k int) ([]bool, error) { return ims[k].Mask, nil })
		if err != nil {
			return fmt.Errorf("merge: pixel metrics of %s: %w", c, err)
		}
		m := per[c]
		m.PixelAUROC, m.PixelAP, m.PRO = px.AUROC, px.AP, px.PRO
		per[c] = m
	}
	return nil
}

// imageMetrics computes each category's image metrics from its rows, as
// the engine does: float32 scores, "defect" rows positive; the pixel
// metrics NaN until pixelMetrics sets them.
func imageMetrics(rows []inspection.Row) (map[string]inspection.Metrics, error) {
	scores := map[string][]float32{}
	labels := map[string][]bool{}
	for _, r := range rows {
		if r.Label == "" {
			continue
		}
		s, err := strconv.ParseFloat(r.Score, 64)
		if err != nil {
			return nil, fmt.Errorf("merge: score %q of %s: %w", r.Score, r.Path, err)
		}
		scores[r.Category] = append(scores[r.Category], float32(s))
		labels[r.Category] = append(labels[r.Category], r.Label == inspection.LabelDefect)
	}
	per := map[string]inspection.Metrics{}
	nan := math.NaN()
	for c := range scores {
		m := metrics.Image(scores[c], labels[c])
		per[c] = inspection.Metrics{Summary: metrics.Summary{ImageAUROC: m.AUROC, ImageAP: m.AP, ImageF1Max: m.F1Max,
			PixelAUROC: nan, PixelAP: nan, PRO: nan}}
	}
	return per, nil
}

// Write writes a combined output into dir: scores.csv, summary.json and the
// overlays, copied from the shard folders under their merged names. The
// HTML and PDF reports are ui/report's (the command writes them next).
func Write(ctx context.Context, dir string, o Output) error {
	if err := os.MkdirAll(filepath.Join(dir, OverlayDir), 0o755); err != nil {
		return fmt.Errorf("merge: create %s: %w", dir, err)
	}
	rows := make([]inspection.Row, len(o.Rows))
	for i, r := range o.Rows {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		if r.Overlay != "" {
			name := filepath.ToSlash(filepath.Join(OverlayDir, inspection.OverlayName(i+1, r.Path)))
			if err := copyFile(r.Overlay, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
				return err
			}
			r.Overlay = name
		}
		rows[i] = r
	}
	if err := inspection.WriteScores(filepath.Join(dir, ScoresName), rows); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if err := inspection.WriteSummary(dir, o.Summary); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("merge: overlay: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("merge: overlay: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("merge: copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("merge: copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// Merge reads the shard output folders, combines them and writes the
// result into out. It returns the merged output as written (overlay
// paths relative to out).
func Merge(ctx context.Context, out string, shardDirs []string) (Output, error) {
	parts := make([]Output, len(shardDirs))
	for i, d := range shardDirs {
		o, err := ReadOutput(d)
		if err != nil {
			return Output{}, err
		}
		parts[i] = o
	}
	merged, err := Combine(ctx, parts)
	if err != nil {
		return Output{}, err
	}
	if err := Write(ctx, out, merged); err != nil {
		return Output{}, err
	}
	merged.Dir = out
	for i := range merged.Rows {
		if merged.Rows[i].Overlay != "" {
			merged.Rows[i].Overlay = filepath.ToSlash(filepath.Join(OverlayDir, inspection.OverlayName(i+1, merged.Rows[i].Path)))
		}
	}
	return merged, nil
}
