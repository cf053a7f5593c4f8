package pipeline

import (
	"context"
	"fmt"
	"image"
	"math/rand"
	randv2 "math/rand/v2"
	"sort"
	"sync"

	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/synth"
)

// Validation split defaults: per category, DefaultValidationImages normal
// training images are held out and each gets DefaultValidationDefects
// synthetic defects.
const (
	DefaultValidationImages  = 8
	DefaultValidationDefects = 2
)

// PickValidation chooses the normal training images of the validation
// split: per category, perCategory of them at random (seeded), but never
// more than a quarter of a category's images, so training keeps most of its
// normal data. It returns indices into normal, sorted.
func PickValidation(normal []Image, perCategory int, seed int64) []int {
	byCat := map[string][]int{}
	var cats []string
	for i, im := range normal {
		if _, ok := byCat[im.Category]; !ok {
			cats = append(cats, im.Category)
		}
		byCat[im.Category] = append(byCat[im.Category], i)
	}
	sort.Strings(cats)
	rng := rand.New(rand.NewSource(seed + 13))
	var out []int
	for _, c := range cats {
		idx := byCat[c]
		n := min(perCategory, len(idx)/4)
		for _, p := range rng.Perm(len(idx))[:n] {
			out = append(out, idx[p])
		}
	}
	sort.Ints(out)
	return out
}

// NewValidation makes the validation split from training data only: for
// each picked normal image (indices into normal, whose files are paths),
// perImage synthetic defects are painted on it (core/synth) and encoded.
// Nothing but normal training images goes in. report gets
// progress.Features events counting the images encoded.
func NewValidation(ctx context.Context, enc *encoder.Encoder, normal []Image, paths []string, picked []int, perImage int, seed int64, report progress.Func) (*Validation, error) {
	if len(paths) != len(normal) {
		return nil, fmt.Errorf("validation split: %d paths for %d normal images", len(paths), len(normal))
	}
	if len(picked) == 0 || perImage <= 0 {
		return nil, nil
	}
	n := len(picked) * perImage
	rng := rand.New(rand.NewSource(seed + 17))
	seeds := make([]int64, n)
	for i := range seeds {
		seeds[i] = rng.Int63()
	}
	masks := make([]*image.Gray, n)
	var mu sync.Mutex
	feats, err := enc.EncodeFunc(ctx, n, func(i int) (image.Image, error) {
		p := paths[picked[i/perImage]]
		img, err := imageio.Load(p)
		if err != nil {
			return nil, err
		}
		out, mask, _ := synth.RandomDefect(img, randv2.New(randv2.NewPCG(uint64(seeds[i]), 2)))
		mu.Lock()
		masks[i] = mask
		mu.Unlock()
		return out, nil
	}, func(e progress.Event) {
		// Reported as encoding: a retraining that reuses the anomaly
		// bank's synthetic defects still makes its validation split.
		report.Send(e)
	})
	if err != nil {
		return nil, fmt.Errorf("validation split: %w", err)
	}
	v := &Validation{}
	for i, f := range feats {
		src := normal[picked[i/perImage]]
		v.Defects = append(v.Defects, Image{ID: src.ID, Category: src.Category, Features: f, Mask: masks[i]})
	}
	return v, nil
}
