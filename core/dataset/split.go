package dataset

import (
	"hash/fnv"
	"math/rand/v2"
	"sort"
)

// SemiSplit makes the semi-supervised split of the DMAD protocol: for each
// category, k anomalous test images move to the training split (keeping
// their masks) and leave the test set. They are spread over the defect
// types: round-robin over the sorted types, a seeded random choice within a
// type. The choice is a pure function of the samples, k and seed (each
// category draws from its own generator seeded by seed and the category
// name), so every method compared sees the same split, and selecting a
// subset of categories does not change a category's choice. A category with
// at most k anomalous test images moves them all.
//
// It returns a new dataset (ds is not modified), sorted like Open's, and the
// moved samples (with Split = Train) in selection order per category.
func SemiSplit(ds *Dataset, k int, seed int64) (*Dataset, []Sample) {
	out := ds.Clone()
	if k <= 0 {
		return out, nil
	}
	var moved []Sample
	for _, cat := range out.Categories {
		// Anomalous test samples of the category by type, sorted by path.
		byType := map[string][]int{}
		for i, s := range out.Samples {
			if s.Category == cat && s.Split == Test && s.Label == Defect {
				byType[s.Defect] = append(byType[s.Defect], i)
			}
		}
		types := make([]string, 0, len(byType))
		for t := range byType {
			types = append(types, t)
		}
		sort.Strings(types)
		h := fnv.New64a()
		h.Write([]byte(cat))
		rng := rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
		for _, t := range types {
			idx := byType[t]
			sort.Slice(idx, func(a, b int) bool { return out.Samples[idx[a]].Path < out.Samples[idx[b]].Path })
			rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
		}
		taken := 0
		for round := 0; taken < k; round++ {
			found := false
			for _, t := range types {
				if taken == k {
					break
				}
				if idx := byType[t]; round < len(idx) {
					found = true
					out.Samples[idx[round]].Split = Train
					moved = append(moved, out.Samples[idx[round]])
					taken++
				}
			}
			if !found {
				break
			}
		}
	}
	sortSamples(out.Samples)
	return out, moved
}
