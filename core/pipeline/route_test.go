package pipeline

import (
	"context"
	"maps"
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/mat"
)

// TestScoreRoutesByCategory checks the fast search's routing: given an
// image's category, each patch's distance is its nearest among the normal
// bank entries of that category's training images (brute force here), for
// the right category and for a wrong one, for PatchCore and DMAD; without
// a category, and with exact search, the whole bank is searched.
func TestScoreRoutesByCategory(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	ctx := context.Background()
	// Projecting to all dimensions makes the cascade exact, so the brute
	// force below is the expected answer, not a bound.
	fast := banks.SearchOptions{Mode: banks.SearchFast, Fast: banks.FastOptions{Dims: f.enc.Dim()}}
	for _, method := range []Method{PatchCore, DMAD} {
		t.Run(string(method), func(t *testing.T) {
			m, err := Fit(ctx, rt, f.set, smallFit(method, f.enc), nil)
			if err != nil {
				t.Fatal(err)
			}
			// The tiny backbone does not tell the fixture's categories
			// apart, so Fit routes none of them (TestKeepRoutableCategories);
			// here they are declared routable to test the routing itself.
			if len(m.Meta.CategoryImages) != 0 || len(m.Meta.CategoryAgreement) != 2 {
				t.Fatalf("fit routes %v (agreement %v) on categories a random backbone mixes", m.Meta.CategoryImages, m.Meta.CategoryAgreement)
			}
			m.Meta.CategoryImages = map[string][]int32{}
			for _, im := range append(slices.Clone(f.set.Normal), f.set.Seen...) {
				m.Meta.CategoryImages[im.Category] = append(m.Meta.CategoryImages[im.Category], im.ID)
			}
			var ids []int32
			for _, v := range m.Meta.CategoryImages {
				ids = append(ids, v...)
			}
			if slices.Sort(ids); len(ids) != len(f.set.Normal)+len(f.set.Seen) {
				t.Fatalf("category images %v", m.Meta.CategoryImages)
			}
			nearestIn := func(cat string, q []float32) float32 {
				best := math.Inf(1)
				for r, id := range m.Normal.Source {
					if cat != "" && !slices.Contains(m.Meta.CategoryImages[cat], id) {
						continue
					}
					var s float64
					for j, v := range m.Normal.Features.Row(r) {
						d := float64(q[j] - v)
						s += d * d
					}
					best = min(best, math.Sqrt(s))
				}
				return float32(best)
			}
			cats := m.Meta.Categories
			if len(cats) != 2 {
				t.Fatalf("categories %v", cats)
			}
			for _, mode := range []banks.SearchOptions{fast, {}} {
				sc, err := NewScorer(rt, m, mode)
				if err != nil {
					t.Fatal(err)
				}
				feats := f.tfeats[:4]
				for _, given := range [][]string{nil, {cats[0], cats[1], cats[1], cats[0]}, {cats[1], cats[0], cats[0], cats[1]}} {
					res, err := sc.ScoreImages(ctx, feats, given, nil)
					if err != nil {
						t.Fatal(err)
					}
					for i, r := range res {
						route := ""
						if given != nil && mode.Mode == banks.SearchFast {
							route = given[i]
						}
						d := r.Distance
						if d == nil {
							d = r.Patches // PatchCore: the distance is the map
						}
						for p := range d {
							want := nearestIn(route, feats[i].Row(p))
							if math.Abs(float64(d[p]-want)) > 1e-3*math.Max(1, float64(want)) {
								t.Fatalf("%v search, categories %v: image %d patch %d distance %v, nearest in %q's entries %v", mode.Mode, given, i, p, d[p], route, want)
							}
						}
					}
				}
				sc.Close()
			}
		})
	}
}

// TestKeepRoutableCategories checks which categories Fit lets the fast
// search route: one whose bank entries lie apart from the others' ("far")
// is routed; two that share one region ("a", "b") are not, since their
// entries' nearest neighbours cross over.
func TestKeepRoutableCategories(t *testing.T) {
	rt := runtimeFor(t)
	rng := rand.New(rand.NewSource(9))
	const perImage, dim = 6, 8
	feats := mat.New(0, dim)
	var source []int32
	m := &Model{Meta: Meta{CategoryImages: map[string][]int32{}}}
	for id := range int32(15) {
		cat, offset := "a", 0.0
		switch {
		case id >= 10:
			cat, offset = "far", 100
		case id%2 == 1:
			cat = "b"
		}
		m.Meta.CategoryImages[cat] = append(m.Meta.CategoryImages[cat], id)
		for range perImage {
			row := make([]float32, dim)
			for j := range row {
				row[j] = float32(offset + rng.NormFloat64())
			}
			feats.AppendRow(row)
			source = append(source, id)
		}
	}
	m.Normal = &banks.NormalBank{Features: feats, Source: source}
	if err := keepRoutableCategories(context.Background(), rt, m, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(m.Meta.CategoryImages)); !slices.Equal(got, []string{"far"}) {
		t.Fatalf("routable categories %v (agreement %v), want [far]", got, m.Meta.CategoryAgreement)
	}
	if a := m.Meta.CategoryAgreement; a["far"] != 1 || a["a"] >= RouteAgreement || a["b"] >= RouteAgreement {
		t.Fatalf("agreement %v", a)
	}
	// One category: nothing to route.
	one := &Model{Normal: m.Normal, Meta: Meta{CategoryImages: map[string][]int32{"a": {0, 1}}}}
	if err := keepRoutableCategories(context.Background(), rt, one, Options{}); err != nil || one.Meta.CategoryImages != nil {
		t.Fatalf("one category: %v, %v", one.Meta.CategoryImages, err)
	}
}
