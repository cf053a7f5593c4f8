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
	"github.com/dmad/workstation/core/progress"
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

// TestKnowledgePatchesRoutes checks the training knowledge of the fast
// search: each patch of a routable category gets its nearest entries in
// its category's part of the banks (the anomaly bank's part includes the
// entries of no image), its own image's entries excluded, whatever the
// order of categories among the patches; the residuals are q minus those
// entries. Brute force gives the expected answer (the cascade projects to
// every dimension, so it is exact).
func TestKnowledgePatchesRoutes(t *testing.T) {
	rt := runtimeFor(t)
	ctx := context.Background()
	const c = 8
	rng := rand.New(rand.NewSource(5))
	rows := func(n int, src func(i int) int32) (*mat.Matrix, []int32) {
		m := mat.New(n, c)
		for i := range m.RawData() {
			m.RawData()[i] = float32(rng.NormFloat64())
		}
		s := make([]int32, n)
		for i := range s {
			s[i] = src(i)
		}
		return m, s
	}
	// Images 0–2 are category a, 3–5 category b; both banks mix them.
	nf, ns := rows(60, func(i int) int32 { return int32(i % 6) })
	af, as := rows(40, func(i int) int32 {
		if i%4 == 0 {
			return banks.NoSource
		}
		return int32(i % 6)
	})
	m := &Model{Normal: &banks.NormalBank{Features: nf, Source: ns},
		Anomaly: &banks.AnomalyBank{Features: af, Source: as, Kind: make([]uint8, 40)}}
	m.Meta.Categories = []string{"a", "b"}
	m.Meta.CategoryImages = map[string][]int32{"a": {0, 1, 2}, "b": {3, 4, 5}}
	catOf := func(id int32) int32 { return id / 3 }
	// Queries from every image, categories interleaved.
	q, src := rows(30, func(i int) int32 { return int32((i * 5) % 6) })
	cat := make([]int32, len(src))
	for i, id := range src {
		cat[i] = catOf(id)
	}
	fast := banks.SearchOptions{Mode: banks.SearchFast, Fast: banks.FastOptions{Dims: c}}
	kn, err := banks.NewKnowledge(rt, m.Normal, m.Anomaly, banks.KnowledgeOptions{Search: fast})
	if err != nil {
		t.Fatal(err)
	}
	defer kn.Close()
	parts, err := knowledgeParts(rt, m, kn, fast)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 {
		t.Fatalf("parts for %v", slices.Sorted(maps.Keys(parts)))
	}
	for _, p := range parts {
		defer p.Close()
	}
	knFor := func(category string) *banks.Knowledge { return parts[category] }
	p, err := knowledgePatches(ctx, kn, knFor, m.Meta.Categories, q, src, cat, false, func(progress.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	nearest := func(bank *mat.Matrix, source []int32, r int) (float32, []float32) {
		best, bestRow := math.Inf(1), -1
		for b, id := range source {
			if id == src[r] || (id != banks.NoSource && catOf(id) != cat[r]) {
				continue
			}
			var s float64
			for j, v := range bank.Row(b) {
				d := float64(q.Row(r)[j] - v)
				s += d * d
			}
			if s < best {
				best, bestRow = s, b
			}
		}
		res := make([]float32, c)
		for j, v := range bank.Row(bestRow) {
			res[j] = q.Row(r)[j] - v
		}
		return float32(math.Sqrt(best)), res
	}
	all := make([]int, q.Rows())
	for i := range all {
		all[i] = i
	}
	kN, kA := make([]float32, len(all)*c), make([]float32, len(all)*c)
	p.Residuals(all, kN, kA)
	for r := range q.Rows() {
		dn, rn := nearest(nf, ns, r)
		da, ra := nearest(af, as, r)
		if math.Abs(float64(p.DN[r]-dn)) > 1e-4 || math.Abs(float64(p.DA[r]-da)) > 1e-4 {
			t.Fatalf("patch %d (image %d): distances %v, %v; its category's part gives %v, %v", r, src[r], p.DN[r], p.DA[r], dn, da)
		}
		for j := range c {
			if math.Abs(float64(kN[r*c+j]-rn[j])) > 1e-5 || math.Abs(float64(kA[r*c+j]-ra[j])) > 1e-5 {
				t.Fatalf("patch %d: residuals are not q minus its part's nearest entries", r)
			}
		}
	}
}
