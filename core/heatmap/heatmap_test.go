package heatmap

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestImageScore(t *testing.T) {
	for _, tc := range []struct {
		in       []float32
		max, top float32
	}{
		{[]float32{1, 9, 3, 7, 5, 2, 8}, 9, 6.4}, // (9+8+7+5+3)/5
		{[]float32{2, 4}, 4, 3},
		{nil, 0, 0},
	} {
		m, top := ImageScore(tc.in)
		if m != tc.max || !near(float64(top), float64(tc.top), 1e-6) {
			t.Errorf("ImageScore(%v) = %v, %v; want %v, %v", tc.in, m, top, tc.max, tc.top)
		}
	}
}

func TestAnomalyMapBilinear(t *testing.T) {
	// 2×2 → 4×4, align_corners=False: along each axis the source
	// coordinates are −0.25 (clamped to 0), 0.25, 0.75, 1.25 (edge), so a
	// line [a b] becomes [a, .75a+.25b, .25a+.75b, b]. With f = x + 2y:
	scores := []float32{0, 1, 2, 3}
	line := []float64{0, 0.25, 0.75, 1}
	got := AnomalyMap(scores, 2, 2, 4, 4, 0)
	for y := range 4 {
		for x := range 4 {
			want := line[x] + 2*line[y]
			if !near(float64(got[y*4+x]), want, 1e-6) {
				t.Fatalf("(%d,%d) = %v, want %v; map %v", y, x, got[y*4+x], want, got)
			}
		}
	}
	// Downsampling by 2 picks midpoints: 4 → 2 samples at 0.5 and 2.5.
	got = AnomalyMap([]float32{0, 1, 2, 3}, 1, 4, 1, 2, 0)
	if !near(float64(got[0]), 0.5, 1e-6) || !near(float64(got[1]), 2.5, 1e-6) {
		t.Fatalf("downsample %v, want [0.5 2.5]", got)
	}
}

func TestGaussianSmooth(t *testing.T) {
	// σ = 1: radius 4, weights e^{−k²/2}/Σ. An impulse at index 3 of 7
	// spreads to w|i−3|, except index 0 which also receives the weight at
	// offset 4 mirrored back from index −4 (reflect: −1→0, …, −4→3).
	var sum float64
	w := make([]float64, 5)
	for k := -4; k <= 4; k++ {
		sum += math.Exp(-float64(k*k) / 2)
	}
	for k := range w {
		w[k] = math.Exp(-float64(k*k)/2) / sum
	}
	m := []float32{0, 0, 0, 1, 0, 0, 0}
	GaussianSmooth(m, 1, 7, 1)
	want := []float64{w[3] + w[4], w[2], w[1], w[0], w[1], w[2], w[3] + w[4]}
	for i := range want {
		if !near(float64(m[i]), want[i], 1e-6) {
			t.Fatalf("smoothed impulse %v, want %v", m, want)
		}
	}
	// The same along columns, and a constant map stays constant.
	col := []float32{0, 0, 0, 1, 0, 0, 0}
	GaussianSmooth(col, 7, 1, 1)
	for i := range want {
		if !near(float64(col[i]), want[i], 1e-6) {
			t.Fatalf("column impulse %v, want %v", col, want)
		}
	}
	c := make([]float32, 30*20)
	for i := range c {
		c[i] = 2.5
	}
	GaussianSmooth(c, 30, 20, 4)
	for i, v := range c {
		if !near(float64(v), 2.5, 1e-5) {
			t.Fatalf("constant map changed at %d: %v", i, v)
		}
	}
	if got := reflect(-1, 3); got != 0 {
		t.Errorf("reflect(-1, 3) = %d", got)
	}
	if got := reflect(7, 3); got != 1 { // 0 1 2 | 2 1 0 | 0 1 ...: index 7 → 1
		t.Errorf("reflect(7, 3) = %d", got)
	}
}

func TestResizeBilinear(t *testing.T) {
	tests := []struct {
		name   string
		src    []float32
		h, w   int
		oh, ow int
		want   []float32
	}{
		// torch.nn.functional.interpolate([[0, 1]], size=4, mode="linear", align_corners=False)
		{"up 2→4", []float32{0, 1}, 1, 2, 1, 4, []float32{0, 0.25, 0.75, 1}},
		// size 4 → 2 samples at 0.5 and 2.5
		{"down 4→2", []float32{0, 1, 2, 3}, 1, 4, 1, 2, []float32{0.5, 2.5}},
		{"2d", []float32{0, 1, 2, 3}, 2, 2, 4, 4, []float32{
			0, 0.25, 0.75, 1,
			0.5, 0.75, 1.25, 1.5,
			1.5, 1.75, 2.25, 2.5,
			2, 2.25, 2.75, 3}},
		{"identity", []float32{1, 2, 3, 4, 5, 6}, 2, 3, 2, 3, []float32{1, 2, 3, 4, 5, 6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ResizeBilinear(tc.src, tc.h, tc.w, tc.oh, tc.ow)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// naiveSmooth is GaussianSmooth as first written (same kernel): every tap
// mirrors its index. The padded version must give bit-identical maps.
func naiveSmooth(m []float32, h, w int, sigma float64) {
	kern, radius := gaussianKernel(sigma)
	line := make([]float64, max(h, w))
	pass := func(n, count, stride, step int) {
		for l := range count {
			base := l * stride
			for i := range n {
				line[i] = float64(m[base+i*step])
			}
			for i := range n {
				var acc float64
				for t, kv := range kern {
					acc += kv * line[reflect(i+t-radius, n)]
				}
				m[base+i*step] = float32(acc)
			}
		}
	}
	pass(w, h, w, 1)
	pass(h, w, 1, w)
}

func TestGaussianSmoothMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		h, w  int
		sigma float64
	}{{37, 53, 4}, {3, 5, 4}, {1, 9, 2}, {224, 224, 4}, {8, 1, 1.5}} {
		a := make([]float32, tc.h*tc.w)
		for i := range a {
			a[i] = float32(rng.NormFloat64())
		}
		b := append([]float32(nil), a...)
		GaussianSmooth(a, tc.h, tc.w, tc.sigma)
		naiveSmooth(b, tc.h, tc.w, tc.sigma)
		if !slices.Equal(a, b) {
			t.Errorf("%d×%d σ %v: padded smoothing differs from the per-tap mirrored one", tc.h, tc.w, tc.sigma)
		}
	}
}

// BenchmarkGaussianSmooth smooths a 224×224 map (the evaluation grid) and
// a 900×900 one (a bottle image's overlay) with σ = 4.
func BenchmarkGaussianSmooth(b *testing.B) {
	for _, n := range []int{224, 900} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m := make([]float32, n*n)
			for i := range m {
				m[i] = float32(i % 7)
			}
			for b.Loop() {
				GaussianSmooth(m, n, n, 4)
			}
		})
	}
}
