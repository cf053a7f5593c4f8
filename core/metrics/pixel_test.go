package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

// handMap is a 4×4 image with one 8-connected region A = {(0,0), (1,1)}
// (diagonal: two regions under 4-connectivity), a region B = {(3,3)} and 13
// normal pixels, two of which score high.
func handMap() (scores []float32, mask []bool) {
	scores = make([]float32, 16)
	mask = make([]bool, 16)
	set := func(x, y int, v float32, m bool) { scores[y*4+x], mask[y*4+x] = v, m }
	set(0, 0, 0.9, true)
	set(1, 1, 0.5, true)
	set(3, 3, 0.7, true)
	set(2, 0, 0.8, false)
	set(0, 3, 0.6, false)
	return scores, mask
}

func TestPROHandWorked(t *testing.T) {
	scores, mask := handMap()
	// Curve: (0,0) (0,¼) (1/13,¼) (1/13,¾) (2/13,¾) (2/13,1) (1,1).
	tests := []struct {
		maxFPR, want float64
	}{
		// ¼·1/13 + ¾·1/13 + 1·(0.3−2/13) = 0.3 − 1/13.
		{0.3, (0.3 - 1.0/13) / 0.3},
		// Interpolated inside the first flat step.
		{0.5 / 13, 0.25},
		{1, 1 - 1.0/13},
	}
	for _, tt := range tests {
		got := PRO([][]float32{scores}, [][]bool{mask}, 4, 4, tt.maxFPR)
		if !near(got, tt.want, 1e-9) {
			t.Errorf("PRO(maxFPR %v) = %v, want %v", tt.maxFPR, got, tt.want)
		}
	}
}

func TestPROPerfectAndEmpty(t *testing.T) {
	scores, mask := handMap()
	perfect := make([]float32, len(scores))
	for i, m := range mask {
		if m {
			perfect[i] = 1
		}
	}
	if got := PRO([][]float32{perfect, make([]float32, 16)}, [][]bool{mask, nil}, 4, 4, 0.3); !near(got, 1, 1e-12) {
		t.Errorf("PRO of a perfect map = %v, want 1", got)
	}
	if got := PRO([][]float32{scores}, [][]bool{nil}, 4, 4, 0.3); !math.IsNaN(got) {
		t.Errorf("PRO without regions = %v, want NaN", got)
	}
	if got := PRO([][]float32{scores}, [][]bool{mask[:3]}, 4, 4, 0.3); !math.IsNaN(got) {
		t.Errorf("PRO with a short mask = %v, want NaN", got)
	}
}

// naivePRO follows the definition literally: every distinct score is a
// threshold, regions come from a recursive 8-connected fill.
func naivePRO(maps [][]float32, masks [][]bool, w, h int, maxFPR float64) float64 {
	type region struct {
		img int
		px  []int
	}
	var regions []region
	for k, m := range masks {
		seen := make([]bool, len(m))
		var fill func(p int, r *region)
		fill = func(p int, r *region) {
			seen[p] = true
			r.px = append(r.px, p)
			x, y := p%w, p/w
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					xx, yy := x+dx, y+dy
					if xx >= 0 && yy >= 0 && xx < w && yy < h && m[yy*w+xx] && !seen[yy*w+xx] {
						fill(yy*w+xx, r)
					}
				}
			}
		}
		for p := range m {
			if m[p] && !seen[p] {
				r := region{img: k}
				fill(p, &r)
				regions = append(regions, r)
			}
		}
	}
	var thr []float32
	var neg float64
	for k, s := range maps {
		thr = append(thr, s...)
		for p := range s {
			if !masks[k][p] {
				neg++
			}
		}
	}
	// Distinct thresholds, descending.
	uniq := map[float32]bool{}
	var ts []float64
	for _, v := range thr {
		if !uniq[v] {
			uniq[v] = true
			ts = append(ts, float64(v))
		}
	}
	sortDesc(ts)
	fpr, pro := []float64{0}, []float64{0}
	for _, t := range ts {
		var fp float64
		for k, s := range maps {
			for p, v := range s {
				if !masks[k][p] && float64(v) >= t {
					fp++
				}
			}
		}
		var ov float64
		for _, r := range regions {
			var c float64
			for _, p := range r.px {
				if float64(maps[r.img][p]) >= t {
					c++
				}
			}
			ov += c / float64(len(r.px))
		}
		fpr = append(fpr, fp/neg)
		pro = append(pro, ov/float64(len(regions)))
	}
	return areaUpTo(fpr, pro, maxFPR) / maxFPR
}

func sortDesc(v []float64) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] > v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// randomImages makes n w×h maps with blobby random masks; anomalous pixels
// score higher on average.
func randomImages(rng *rand.Rand, n, w, h, levels int) ([][]float32, [][]bool) {
	maps := make([][]float32, n)
	masks := make([][]bool, n)
	for k := range maps {
		maps[k] = make([]float32, w*h)
		masks[k] = make([]bool, w*h)
		for b := rng.IntN(3); b > 0; b-- {
			cx, cy, r := rng.IntN(w), rng.IntN(h), 1+rng.IntN(3)
			for y := range h {
				for x := range w {
					if (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r {
						masks[k][y*w+x] = true
					}
				}
			}
		}
		for p := range maps[k] {
			v := rng.IntN(levels)
			if masks[k][p] {
				v += rng.IntN(levels)
			}
			maps[k][p] = float32(v) / float32(levels)
		}
	}
	return maps, masks
}

func TestPROMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	maps, masks := randomImages(rng, 6, 12, 10, 40)
	for _, maxFPR := range []float64{0.05, 0.3, 1} {
		got, want := PRO(maps, masks, 12, 10, maxFPR), naivePRO(maps, masks, 12, 10, maxFPR)
		if !near(got, want, 1e-9) {
			t.Errorf("maxFPR %v: PRO = %v, naive = %v", maxFPR, got, want)
		}
	}
}

func TestPixelAccumulatorMatchesExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	tests := []struct {
		name   string
		levels int // score grid; 0 = continuous
		bins   int
		exact  bool // every grid value has its own bin
	}{
		{"grid values in own bins", 500, 1000, true},
		{"continuous scores", 0, DefaultBins, false},
		{"coarse bins", 0, 64, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const w, h, n = 16, 12, 20
			var maps [][]float32
			var masks [][]bool
			if tt.levels > 0 {
				maps, masks = randomImages(rng, n, w, h, tt.levels)
				// Values k/levels in [0, 2): centre them in bins of width 2/bins.
				for _, m := range maps {
					for i := range m {
						m[i] += 1 / float32(tt.bins)
					}
				}
			} else {
				maps, masks = randomImages(rng, n, w, h, 1<<20)
			}
			lo, hi := float32(0), float32(2)
			acc, err := NewPixelAccumulator(lo, hi, tt.bins)
			if err != nil {
				t.Fatal(err)
			}
			var flat []float32
			var labels []bool
			for k := range maps {
				if err := acc.Add(maps[k], masks[k], w, h); err != nil {
					t.Fatal(err)
				}
				flat = append(flat, maps[k]...)
				labels = append(labels, masks[k]...)
			}
			exactAUROC := AUROC(flat, labels)
			got := acc.AUROC()
			bound := acc.AUROCTieBound()
			if tt.exact {
				if !near(got, exactAUROC, 1e-12) || !near(acc.AP(), AveragePrecision(flat, labels), 1e-12) ||
					!near(acc.F1Max(), F1Max(flat, labels), 1e-12) {
					t.Errorf("binned (AUROC %v AP %v F1 %v) != exact (%v %v %v)", got, acc.AP(), acc.F1Max(),
						exactAUROC, AveragePrecision(flat, labels), F1Max(flat, labels))
				}
				if !near(acc.PRO(0.3), naivePRO(maps, masks, w, h, 0.3), 1e-9) {
					t.Errorf("binned PRO %v != exact %v", acc.PRO(0.3), naivePRO(maps, masks, w, h, 0.3))
				}
			}
			if math.Abs(got-exactAUROC) > bound+1e-12 {
				t.Errorf("AUROC %v differs from exact %v by more than the tie bound %v", got, exactAUROC, bound)
			}
			if tt.bins == DefaultBins && bound > 1e-3 {
				t.Errorf("tie bound %v too large for %d bins", bound, tt.bins)
			}
		})
	}
}

func TestPixelAccumulatorMergeAndErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	maps, masks := randomImages(rng, 8, 10, 10, 100)
	whole, _ := NewPixelAccumulator(0, 2, 0)
	a, _ := NewPixelAccumulator(0, 2, 0)
	b, _ := NewPixelAccumulator(0, 2, 0)
	for k := range maps {
		whole.Add(maps[k], masks[k], 10, 10)
		if k%2 == 0 {
			a.Add(maps[k], masks[k], 10, 10)
		} else {
			b.Add(maps[k], masks[k], 10, 10)
		}
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if a.Scores() != whole.Scores() {
		t.Errorf("merged %+v != whole %+v", a.Scores(), whole.Scores())
	}
	// Twice the first image and once the second, by MergeTimes and by Add.
	twice, _ := NewPixelAccumulator(0, 2, 0)
	for _, k := range []int{0, 0, 1} {
		twice.Add(maps[k], masks[k], 10, 10)
	}
	first, _ := NewPixelAccumulator(0, 2, 0)
	second, _ := NewPixelAccumulator(0, 2, 0)
	first.Add(maps[0], masks[0], 10, 10)
	second.Add(maps[1], masks[1], 10, 10)
	sum, _ := NewPixelAccumulator(0, 2, 0)
	sum.Add(maps[5], masks[5], 10, 10)
	sum.Reset()
	if err := sum.MergeTimes(first, 2); err != nil {
		t.Fatal(err)
	}
	if err := sum.MergeTimes(second, 1); err != nil {
		t.Fatal(err)
	}
	got, want := sum.Scores(), twice.Scores()
	if p, n, r := sum.Counts(); math.Abs(got.AUROC-want.AUROC) > 1e-12 || math.Abs(got.PRO-want.PRO) > 1e-12 ||
		math.Abs(got.AP-want.AP) > 1e-12 || p+n != 300 {
		t.Errorf("MergeTimes %+v (%d+%d pixels, %d regions) != added %+v", sum.Scores(), p, n, r, twice.Scores())
	}
	if err := sum.MergeTimes(first, -1); err == nil {
		t.Error("MergeTimes -1: no error")
	}
	other, _ := NewPixelAccumulator(0, 1, 0)
	if err := a.Merge(other); err == nil {
		t.Error("merge of different ranges: no error")
	}
	if err := a.Add(make([]float32, 5), nil, 2, 2); err == nil {
		t.Error("Add with a wrong map size: no error")
	}
	if err := a.Add(make([]float32, 4), make([]bool, 3), 2, 2); err == nil {
		t.Error("Add with a wrong mask size: no error")
	}
	if _, err := NewPixelAccumulator(1, 0, 0); err == nil {
		t.Error("inverted range: no error")
	}
}

// BenchmarkPixelAccumulator100M streams 100 million pixels (2000 maps of
// 224×224, a quarter of them with a defect) through one accumulator.
func BenchmarkPixelAccumulator100M(b *testing.B) {
	const w, h, images = 224, 224, 2000
	rng := rand.New(rand.NewPCG(1, 1))
	maps, masks := randomImages(rng, 4, w, h, 1<<16)
	masks[1], masks[2], masks[3] = nil, nil, nil
	b.ReportAllocs()
	for b.Loop() {
		acc, err := NewPixelAccumulator(0, 2, DefaultBins)
		if err != nil {
			b.Fatal(err)
		}
		for k := range images {
			if err := acc.Add(maps[k%4], masks[k%4], w, h); err != nil {
				b.Fatal(err)
			}
		}
		_ = acc.Scores()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(w*h*images), "ns/pixel")
}
