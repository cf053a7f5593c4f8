package banks

import (
	"math"
	"math/rand"
	"slices"
	"testing"
)

// TestKernelsMatchGo checks the kernels against their Go versions bit for
// bit (on amd64 they are SSE assembly; elsewhere, and with -tags purego,
// the Go versions, and the test still checks those against sqDist) and
// nearMembers against its definition, on lengths that leave tails.
func TestKernelsMatchGo(t *testing.T) {
	skipIfFused(t)
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 3, 4, 5, 8, 31, 64, 257} {
		c := make([]float32, 64)
		for i := range c {
			c[i] = float32(rng.NormFloat64())
		}
		pre := make([]float32, n*prefixDim)
		d := make([]float32, n)
		for i := range pre {
			pre[i] = float32(rng.NormFloat64())
		}
		for i := range d {
			d[i] = float32(rng.ExpFloat64())
		}
		for _, dcg := range []float32{0, 0.5, 1, 2, 4} {
			got := make([]int32, n)
			var want []int32
			for p, x := range d {
				if dcg < 2*x*pruneSlack {
					want = append(want, 7+int32(p))
				}
			}
			if gn := nearMembers(d, dcg, 7, got); gn != len(want) || !slices.Equal(got[:gn], want) {
				t.Fatalf("n=%d dcg=%v: near members %v, want %v", n, dcg, got[:gn], want)
			}
		}
		cand := rng.Perm(n)
		idx := make([]int32, n)
		for i, p := range cand {
			idx[i] = int32(p)
		}
		got, want := make([]float32, n), make([]float32, n)
		firstBlocks(c, pre, idx, got)
		firstBlocksGo(c, pre, idx, want)
		for i := range n {
			p := idx[i]
			ref := sqDist(c[:16], pre[int(p)*prefixDim:int(p)*prefixDim+16], float32(math.Inf(1)))
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) || math.Float32bits(want[i]) != math.Float32bits(ref) {
				t.Fatalf("n=%d: first block of member %d = %v, Go %v, sqDist %v", n, p, got[i], want[i], ref)
			}
		}
	}
}

// TestSqDistBlocksMatchesGo checks sqDistBlocks against sqDistBlocksGo
// bit for bit, with bounds that stop it at every block, none, and NaN
// sums (which never stop it, as in Go), and sqDistFrom against the
// definition of its sum.
func TestSqDistBlocksMatchesGo(t *testing.T) {
	skipIfFused(t)
	rng := rand.New(rand.NewSource(3))
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	for _, n := range []int{0, 5, 16, 17, 48, 100, 768} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		full := sqDistBlocksGo(a, b, 0, inf)
		for _, s := range []float32{0, 0.25, nan} {
			for _, bound := range []float32{inf, 0, full / 3, full / 2, full, full * 2, nan} {
				got, want := sqDistBlocks(a, b, s, bound), sqDistBlocksGo(a, b, s, bound)
				if math.Float32bits(got) != math.Float32bits(want) {
					t.Fatalf("n=%d s=%v bound=%v: %v, Go %v", n, s, bound, got, want)
				}
			}
		}
		var want float32 // the sum sqDist defines: blocks in order, then the tail
		for i := 0; i+16 <= n; i += 16 {
			want += block16Go(a[i:i+16], b[i:i+16])
		}
		for i := n / 16 * 16; i < n; i++ {
			d := a[i] - b[i]
			want += d * d
		}
		if got := sqDist(a, b, inf); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("n=%d: sqDist %v, want %v", n, got, want)
		}
		if n >= 32 {
			if got := sqDist(a, b, 0); got != block16Go(a[:16], b[:16]) {
				t.Fatalf("n=%d: sqDist stopped at bound 0 with %v, not after the first block", n, got)
			}
		}
	}
}

// TestAxpyMatchesGo checks axpy against axpyGo bit for bit, on lengths
// with and without tails.
func TestAxpyMatchesGo(t *testing.T) {
	skipIfFused(t)
	rng := rand.New(rand.NewSource(2))
	for _, n := range []int{0, 1, 7, 8, 9, 16, 31, 128, 131} {
		x := make([]float32, n+3) // longer than y, as axpy allows
		y := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		for i := range y {
			y[i] = float32(rng.NormFloat64())
		}
		a := float32(rng.NormFloat64())
		got, want := append([]float32(nil), y...), append([]float32(nil), y...)
		axpy(got, x, a)
		axpyGo(want, x, a)
		for i := range y {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) || want[i] != y[i]+a*x[i] {
				t.Fatalf("n=%d: element %d = %v, Go %v, expected %v", n, i, got[i], want[i], y[i]+a*x[i])
			}
		}
	}
}

// skipIfFused skips where the compiler fuses a multiply and an add
// (GOAMD64=v3 and up): the Go kernels then round differently from the
// SSE ones, which never fuse. It compares block16Go with the same sums
// rounded step by step in float64 (exact for float32 operands).
func skipIfFused(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	for range 64 {
		a, b := make([]float32, 16), make([]float32, 16)
		for i := range a {
			a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		var s [4]float32
		for i := range 16 {
			d := float32(float64(a[i]) - float64(b[i]))
			s[i%4] = float32(float64(s[i%4]) + float64(float32(float64(d)*float64(d))))
		}
		want := float32(float64(float32(float64(s[0])+float64(s[1]))) + float64(float32(float64(s[2])+float64(s[3]))))
		if block16Go(a, b) != want {
			t.Skip("the compiler fuses multiply-adds here (GOAMD64=v3 or up): the Go kernels round differently from the SSE ones")
		}
	}
}
