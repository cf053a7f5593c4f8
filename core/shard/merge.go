package shard

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dmad/workstation/core/metrics"
)

// Files of an inspection output folder (see `workstation inspect`).
const (
	ScoresName  = "scores.csv"
	SummaryName = "summary.json"
	OverlayDir  = "overlays"
)

// scoresHeader is the header of scores.csv as the report writes it.
var scoresHeader = []string{"path", "category", "score", "decision", "label", "overlay"}

// Row is one line of scores.csv, kept as text so merged rows are the same
// bytes as the shard's.
type Row struct {
	Path, Category, Score, Decision, Label, Overlay string
}

// Metrics of one category in summary.json. The image metrics are
// recomputed from the merged rows. The pixel metrics need every image's
// anomaly map, which scores.csv does not hold, so a merge leaves them nil
// (null in JSON) rather than combine shard values that are not comparable.
// The JSON keys are those of metrics.Summary, which inspect writes.
type Metrics struct {
	ImageAUROC float64  `json:"image_auroc"`
	ImageAP    float64  `json:"image_ap"`
	ImageF1Max float64  `json:"image_f1max"`
	PixelAUROC *float64 `json:"pixel_auroc"`
	PixelAP    *float64 `json:"pixel_ap"`
	PRO        *float64 `json:"pro"`
}

// Summary is summary.json.
type Summary struct {
	Input       string             `json:"input"`
	Images      int                `json:"images"`
	Threshold   float64            `json:"threshold"`
	Anomalous   int                `json:"anomalous"`
	Normal      int                `json:"normal"`
	ModelMethod string             `json:"model_method"`
	ModelRegime string             `json:"model_regime"`
	PerCategory map[string]Metrics `json:"per_category,omitempty"`
	// Shard is "i/n" in a shard's output ("" in an unsharded or merged one).
	Shard string `json:"shard,omitempty"`
	// MergedFrom lists the shard folders of a merged output.
	MergedFrom []string `json:"merged_from,omitempty"`
}

// Output is an inspection output folder's scores and summary.
type Output struct {
	Dir     string
	Rows    []Row
	Summary Summary
}

// ReadOutput reads scores.csv and summary.json of the output folder dir.
func ReadOutput(dir string) (Output, error) {
	o := Output{Dir: dir}
	sp := filepath.Join(dir, SummaryName)
	b, err := os.ReadFile(sp)
	if err != nil {
		return o, fmt.Errorf("read shard output: %w", err)
	}
	if err := json.Unmarshal(b, &o.Summary); err != nil {
		return o, fmt.Errorf("read %s: %w", sp, err)
	}
	cp := filepath.Join(dir, ScoresName)
	f, err := os.Open(cp)
	if err != nil {
		return o, fmt.Errorf("read shard output: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = len(scoresHeader)
	head, err := r.Read()
	if err != nil || strings.Join(head, ",") != strings.Join(scoresHeader, ",") {
		return o, fmt.Errorf("read %s: header %q, want %q (%v)", cp, head, scoresHeader, err)
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return o, fmt.Errorf("read %s: %w", cp, err)
		}
		o.Rows = append(o.Rows, Row{rec[0], rec[1], rec[2], rec[3], rec[4], rec[5]})
	}
	return o, nil
}

// Combine merges shard outputs into the output an unsharded run over the
// same input writes: all rows, in the report's order (category, then path),
// with overlay names renumbered to that order; the counts and the image
// metrics recomputed from the rows. The shards must agree on input,
// threshold and model; no image may be in two shards; when the shards
// name themselves (Summary.Shard), all n of them must be there.
func Combine(parts []Output) (Output, error) {
	if len(parts) == 0 {
		return Output{}, errors.New("merge: no shard outputs")
	}
	first := parts[0].Summary
	var rows []Row
	origin := map[string]string{}
	shards := map[int]string{}
	count := 0
	labelled := false
	for _, p := range parts {
		s := p.Summary
		if s.Input != first.Input || s.Threshold != first.Threshold || s.ModelMethod != first.ModelMethod || s.ModelRegime != first.ModelRegime {
			return Output{}, fmt.Errorf("merge: %s was made with input %q, threshold %v, model %s/%s; %s with %q, %v, %s/%s: not shards of one run",
				p.Dir, s.Input, s.Threshold, s.ModelMethod, s.ModelRegime, parts[0].Dir, first.Input, first.Threshold, first.ModelMethod, first.ModelRegime)
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
		labelled = labelled || s.PerCategory != nil
		for _, r := range p.Rows {
			if prev, ok := origin[r.Path]; ok {
				return Output{}, fmt.Errorf("merge: %s is in both %s and %s: overlapping shards", r.Path, prev, p.Dir)
			}
			origin[r.Path] = p.Dir
			if r.Overlay != "" {
				r.Overlay = filepath.Join(p.Dir, filepath.FromSlash(r.Overlay)) // source, renamed below
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
	sum := Summary{Input: first.Input, Images: len(rows), Threshold: first.Threshold,
		ModelMethod: first.ModelMethod, ModelRegime: first.ModelRegime}
	for _, p := range parts {
		sum.MergedFrom = append(sum.MergedFrom, p.Dir)
	}
	for _, r := range rows {
		if r.Decision == "fail" {
			sum.Anomalous++
		}
	}
	sum.Normal = len(rows) - sum.Anomalous
	if labelled {
		per, err := imageMetrics(rows)
		if err != nil {
			return Output{}, err
		}
		sum.PerCategory = per
	}
	return Output{Rows: rows, Summary: sum}, nil
}

// imageMetrics computes each category's image metrics from its rows, as
// the engine does: float32 scores, "defect" rows positive.
func imageMetrics(rows []Row) (map[string]Metrics, error) {
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
		labels[r.Category] = append(labels[r.Category], r.Label == "defect")
	}
	per := map[string]Metrics{}
	for c := range scores {
		m := metrics.Image(scores[c], labels[c])
		per[c] = Metrics{ImageAUROC: m.AUROC, ImageAP: m.AP, ImageF1Max: m.F1Max}
	}
	return per, nil
}

// overlayName is the report's overlay file name of row i.
func overlayName(i int, path string) string {
	base := filepath.Base(path)
	return fmt.Sprintf("%04d_%s_overlay.png", i, strings.TrimSuffix(base, filepath.Ext(base)))
}

// Write writes a combined output into dir: scores.csv, summary.json and the
// overlays, copied from the shard folders under their merged names.
func Write(ctx context.Context, dir string, o Output) error {
	if err := os.MkdirAll(filepath.Join(dir, OverlayDir), 0o755); err != nil {
		return fmt.Errorf("merge: create %s: %w", dir, err)
	}
	rows := make([]Row, len(o.Rows))
	for i, r := range o.Rows {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		if r.Overlay != "" {
			name := filepath.ToSlash(filepath.Join(OverlayDir, overlayName(i, r.Path)))
			if err := copyFile(r.Overlay, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
				return err
			}
			r.Overlay = name
		}
		rows[i] = r
	}
	cp := filepath.Join(dir, ScoresName)
	f, err := os.Create(cp)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	w := csv.NewWriter(f)
	_ = w.Write(scoresHeader)
	for _, r := range rows {
		_ = w.Write([]string{r.Path, r.Category, r.Score, r.Decision, r.Label, r.Overlay})
	}
	w.Flush()
	if err := errors.Join(w.Error(), f.Close()); err != nil {
		return fmt.Errorf("merge: write %s: %w", cp, err)
	}
	b, err := json.MarshalIndent(o.Summary, "", "  ")
	if err != nil {
		return fmt.Errorf("merge: encode summary: %w", err)
	}
	sp := filepath.Join(dir, SummaryName)
	if err := os.WriteFile(sp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("merge: write %s: %w", sp, err)
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
// result into out. It returns the merged summary.
func Merge(ctx context.Context, out string, shardDirs []string) (Summary, error) {
	parts := make([]Output, len(shardDirs))
	for i, d := range shardDirs {
		o, err := ReadOutput(d)
		if err != nil {
			return Summary{}, err
		}
		parts[i] = o
	}
	merged, err := Combine(parts)
	if err != nil {
		return Summary{}, err
	}
	if err := Write(ctx, out, merged); err != nil {
		return Summary{}, err
	}
	return merged.Summary, nil
}
