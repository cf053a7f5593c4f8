package banks

import (
	"context"
	"errors"
	"math"
	"math/rand"
	"testing"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/progress"
)

// gaussian returns rows×cols N(0,1) values.
func gaussian(rng *rand.Rand, rows, cols int) *mat.Matrix {
	m := mat.New(rows, cols)
	for i := range m.RawData() {
		m.RawData()[i] = float32(rng.NormFloat64())
	}
	return m
}

// clusters returns points around len(sizes) centres spaced sep apart (each
// centre is sep/√2·e_j... on its own axis pair), with per-point std sd, and
// each point's cluster label.
func clusters(rng *rand.Rand, sizes []int, cols int, sep, sd float64) (*mat.Matrix, []int, *mat.Matrix) {
	total := 0
	for _, s := range sizes {
		total += s
	}
	centres := mat.New(len(sizes), cols)
	for c := range sizes {
		for j := range cols {
			centres.Row(c)[j] = float32(rng.NormFloat64() * sep / math.Sqrt(2*float64(cols)))
		}
	}
	m := mat.New(total, cols)
	labels := make([]int, 0, total)
	r := 0
	for c, s := range sizes {
		for range s {
			for j := range cols {
				m.Row(r)[j] = centres.Row(c)[j] + float32(rng.NormFloat64()*sd)
			}
			labels = append(labels, c)
			r++
		}
	}
	return m, labels, centres
}

// naiveGreedy is the textbook PatchCore loop: distances start as the mean
// distance to the start points; then argmax, select, min-update with a full
// scan of every point.
func naiveGreedy(pts *mat.Matrix, starts []int, n int) []int {
	d := make([]float64, pts.Rows())
	dist := func(a, b []float32) float64 {
		var s float64
		for i := range a {
			x := float64(a[i] - b[i])
			s += x * x
		}
		return math.Sqrt(s)
	}
	for i := range d {
		for _, s := range starts {
			d[i] += dist(pts.Row(i), pts.Row(s))
		}
		d[i] /= float64(len(starts))
	}
	var out []int
	for len(out) < n {
		best := 0
		for i := range d {
			if d[i] > d[best] {
				best = i
			}
		}
		out = append(out, best)
		for i := range d {
			d[i] = math.Min(d[i], dist(pts.Row(i), pts.Row(best)))
		}
	}
	return out
}

func TestCoresetMatchesNaive(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rows, dim int
		proj, n   int
		clustered bool
		// offset moves every feature away from the origin (large
		// coordinates, small differences: rounding in every sum).
		offset float32
	}{
		{"gaussian-noproj", 3000, 48, -1, 120, false, 0},
		{"gaussian-proj", 2500, 200, 32, 80, false, 0},
		{"clustered", 4000, 64, -1, 150, true, 0},
		{"clustered-far-from-origin", 4000, 128, -1, 300, true, 500},
		{"gaussian-proj-far-from-origin", 3000, 256, 128, 200, false, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(7))
			var feats *mat.Matrix
			if tc.clustered {
				sizes := make([]int, 40)
				for i := range sizes {
					sizes[i] = tc.rows / 40
				}
				feats, _, _ = clusters(rng, sizes, tc.dim, 20, 1)
			} else {
				feats = gaussian(rng, tc.rows, tc.dim)
			}
			for i, v := range feats.RawData() {
				feats.RawData()[i] = v + tc.offset
			}
			opts := CoresetOptions{ProjDim: tc.proj, Seed: 3, Workers: 2}
			got, err := Coreset(context.Background(), feats, tc.n, opts)
			if err != nil {
				t.Fatal(err)
			}
			// The reference redoes the same projection and start points.
			ref := rand.New(rand.NewSource(opts.Seed))
			pts := feats
			if tc.proj > 0 {
				if pts, err = Project(context.Background(), feats, tc.proj, ref, 1, nil); err != nil {
					t.Fatal(err)
				}
			}
			want := naiveGreedy(pts, sampleDistinct(ref, feats.Rows(), 10), tc.n)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("selection %d: got %d, naive %d (got %v…, want %v…)", i, got[i], want[i], got[:i+1], want[:i+1])
				}
			}
			opts.disablePruning = true
			unpruned, err := Coreset(context.Background(), feats, tc.n, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range unpruned {
				if unpruned[i] != got[i] {
					t.Fatalf("selection %d: pruned %d, unpruned %d", i, got[i], unpruned[i])
				}
			}
		})
	}
}

// coverRadius is the largest distance from any point to its nearest member
// of the subset.
func coverRadius(feats *mat.Matrix, subset []int) float64 {
	worst := 0.0
	for i := range feats.Rows() {
		best := math.Inf(1)
		for _, s := range subset {
			best = math.Min(best, float64(sqDist(feats.Row(i), feats.Row(s), float32(math.Inf(1)))))
		}
		worst = math.Max(worst, best)
	}
	return math.Sqrt(worst)
}

func TestCoresetCoversClusters(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	// 12 clusters of very different sizes, some tiny: random sampling misses them.
	sizes := []int{2000, 1500, 1200, 800, 600, 400, 200, 100, 50, 10, 5, 3}
	const sep = 40.0
	feats, labels, centres := clusters(rng, sizes, 96, sep, 0.5)
	minSep := math.Inf(1)
	for a := range centres.Rows() {
		for b := a + 1; b < centres.Rows(); b++ {
			minSep = math.Min(minSep, math.Sqrt(float64(sqDist(centres.Row(a), centres.Row(b), float32(math.Inf(1))))))
		}
	}
	n := 2 * feats.Rows() / 100 // 2 %
	var progressed int
	idx, err := Coreset(context.Background(), feats, n, CoresetOptions{Seed: 5, ProjDim: 32, Progress: func(e progress.Event) {
		if e.Stage != progress.Bank || e.Total != n || e.Done < progressed {
			t.Errorf("progress %s %d/%d after %d", e.Stage, e.Done, e.Total, progressed)
		}
		progressed = e.Done
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != n || progressed != n {
		t.Fatalf("%d indices, progress reached %d, want %d", len(idx), progressed, n)
	}
	seen := map[int]bool{}
	covered := map[int]bool{}
	for _, i := range idx {
		if seen[i] {
			t.Fatalf("index %d selected twice", i)
		}
		seen[i] = true
		covered[labels[i]] = true
	}
	if len(covered) != len(sizes) {
		t.Fatalf("coreset covers %d of %d clusters", len(covered), len(sizes))
	}
	core := coverRadius(feats, idx)
	random := coverRadius(feats, rand.New(rand.NewSource(5)).Perm(feats.Rows())[:n])
	t.Logf("cluster separation ≥ %.1f; cover radius: coreset %.2f, random %.2f", minSep, core, random)
	if core > minSep/2 {
		t.Errorf("coreset cover radius %.2f not small against separation %.1f", core, minSep)
	}
	if core >= random {
		t.Errorf("coreset cover radius %.2f not better than random sampling's %.2f", core, random)
	}
}

func TestCoresetEdges(t *testing.T) {
	feats := gaussian(rand.New(rand.NewSource(2)), 50, 8)
	all, err := Coreset(context.Background(), feats, 80, CoresetOptions{})
	if err != nil || len(all) != 50 {
		t.Fatalf("n > rows: %d indices, %v", len(all), err)
	}
	if _, err := Coreset(context.Background(), feats, 0, CoresetOptions{}); err == nil {
		t.Error("n = 0 accepted")
	}
	if _, err := Coreset(context.Background(), &mat.Matrix{}, 3, CoresetOptions{}); err == nil {
		t.Error("empty matrix accepted")
	}
	// Duplicates: 10 distinct points, each 5 times; asking for 20 must still
	// give 20 distinct indices.
	dup := mat.New(50, 4)
	for i := range 50 {
		dup.Row(i)[0] = float32(i % 10)
	}
	idx, err := Coreset(context.Background(), dup, 20, CoresetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, i := range idx {
		if seen[i] {
			t.Fatalf("duplicate index %d in %v", i, idx)
		}
		seen[i] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Coreset(ctx, gaussian(rand.New(rand.NewSource(3)), 2000, 8), 100, CoresetOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestCoresetInParts(t *testing.T) {
	rng := rand.New(rand.NewSource(13))
	// Tiny clusters sit in different parts: a part left out, or a part's
	// picks lost, leaves one uncovered.
	sizes := []int{1500, 8, 1400, 1300, 5, 1200, 900, 700, 20, 600, 400, 3}
	feats, labels, _ := clusters(rng, sizes, 64, 8, 1)
	const n = 160
	ctx := context.Background()
	one, err := Coreset(ctx, feats, n, CoresetOptions{ProjDim: 32, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var events []progress.Event
	opts := CoresetOptions{ProjDim: 32, Seed: 3, Workers: 2, PartRows: 1000, Progress: func(e progress.Event) { events = append(events, e) }}
	parts, err := Coreset(ctx, feats, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != n {
		t.Fatalf("%d points, want %d", len(parts), n)
	}
	seen, hit := map[int]bool{}, map[int]bool{}
	for _, i := range parts {
		if i < 0 || i >= feats.Rows() || seen[i] {
			t.Fatalf("bad or repeated index %d", i)
		}
		seen[i], hit[labels[i]] = true, true
	}
	if len(hit) != len(sizes) {
		t.Errorf("selection in parts covers %d of %d clusters", len(hit), len(sizes))
	}
	r1, r2 := coverRadius(feats, one), coverRadius(feats, parts)
	t.Logf("cover radius: one stage %.3f, parts of 1000 %.3f", r1, r2)
	if r2 > 1.25*r1 {
		t.Errorf("cover radius in parts %.3f, one stage %.3f", r2, r1)
	}
	// Progress counts both stages and ends at its total.
	last := events[len(events)-1]
	if last.Done != last.Total || last.Total <= n {
		t.Errorf("last progress %d/%d, want done = total > %d", last.Done, last.Total, n)
	}
	for i, e := range events {
		if e.Stage != progress.Bank || e.Total != last.Total || (i > 0 && e.Done < events[i-1].Done) {
			t.Fatalf("progress event %d: %s %d/%d after %v", i, e.Stage, e.Done, e.Total, events[max(0, i-1)])
		}
	}
	// The parts run side by side, yet the selection depends on the seed only.
	opts.Progress, opts.Workers = nil, 1
	again, err := Coreset(ctx, feats, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i] != parts[i] {
			t.Fatalf("selection %d: %d with 1 worker, %d with 2", i, again[i], parts[i])
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Coreset(cctx, feats, n, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
