package pipeline

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/progress"
)

// DefaultWeakFraction caps the patches a weakly labelled image contributes:
// its top 1 % (7 of a 28×28 grid), small enough to stay inside a small
// defect.
const DefaultWeakFraction = 0.01

// WeakPatchCount is how many patches an image of n patches contributes as
// seen anomalies with cap fraction f: ⌊f·n⌋, at least one.
func WeakPatchCount(n int, f float64) int {
	return min(n, max(1, int(math.Floor(f*float64(n)))))
}

// TopPatches flags the k highest of scores (multiple-instance style: a
// defective image has at least one anomalous patch, most likely among its
// highest-scoring ones). Only those k are flagged; the image's other
// patches are never used, neither as anomalies nor as normal patches.
func TopPatches(scores []float32, k int) []bool {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	flags := make([]bool, len(scores))
	for _, i := range idx[:min(k, len(idx))] {
		flags[i] = true
	}
	return flags
}

// fitWeak uses the weakly labelled images (DMAD, semi-supervised regime):
// each round scores them with the current model, takes each image's
// top-scoring patches (capped by WeakFraction) as seen-anomaly patches
// beside the masked ones, and refits the anomaly bank and the mapper. The
// first round picks with the model fitted without them.
func fitWeak(ctx context.Context, rt *ort.Runtime, m *Model, set TrainSet, opts Options, c int, report progress.Func) error {
	if len(set.Weak) == 0 {
		return nil
	}
	for round := 1; round <= opts.WeakRounds; round++ {
		var start *Model
		if opts.Start != nil {
			// A refit refits its rounds too, each from the last (where
			// fitDMAD allows it).
			cp := *m
			start = &cp
		}
		picked, n, err := pickWeak(ctx, rt, m, set.Weak, opts)
		if err != nil {
			return fmt.Errorf("weak labels, round %d: %w", round, err)
		}
		s := set
		s.Seen = append(append([]Image(nil), set.Seen...), picked...)
		if err := fitDMAD(ctx, rt, m, s, opts, c, start, report); err != nil {
			return err
		}
		m.Meta.WeakPatches = n
	}
	return nil
}

// pickWeak scores the weak images with m and returns them with their top
// patches flagged, and the number of patches flagged. Patches are ranked
// by m's anomaly map when the validation split has chosen one
// (Meta.MapFusion), else by the mapper's scores.
func pickWeak(ctx context.Context, rt *ort.Runtime, m *Model, weak []Image, opts Options) ([]Image, int, error) {
	sc, err := NewScorer(rt, m, opts.Search)
	if err != nil {
		return nil, 0, err
	}
	defer sc.Close()
	out := make([]Image, len(weak))
	total := 0
	for i, im := range weak {
		feats, err := im.features()
		if err != nil {
			return nil, 0, fmt.Errorf("weak image: %w", err)
		}
		// Weak images are not in the normal bank: nothing to exclude.
		s, d, err := sc.PatchParts(ctx, feats, nil)
		if err != nil {
			return nil, 0, err
		}
		if m.Meta.MapFusion != nil {
			// The anomaly map the validation split rated best locates
			// defects; the mapper's scores alone may not (its weight there
			// is often 0).
			s = m.Meta.MapFusion.Fuse(nil, s, d)
		}
		k := WeakPatchCount(len(s), opts.WeakFraction)
		out[i] = Image{ID: im.ID, Category: im.Category, Features: feats, Flags: TopPatches(s, k)}
		total += k
	}
	return out, total, nil
}
