package banks

import (
	"math"
	"math/rand"
	"slices"
	"testing"
)

// TestNearSuffix checks nearSuffix against its definition.
func TestNearSuffix(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 3, 4, 5, 8, 31, 64, 257} {
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(rng.ExpFloat64())
		}
		if n > 4 {
			d[2] = d[3] // ties
		}
		slices.Sort(d)
		dcgs := []float32{0, 0.5, 1, 2, 4}
		if n > 2 {
			dcgs = append(dcgs, 2*d[2], 2*d[2]*pruneSlack) // at a member's own bound
		}
		for _, dcg := range dcgs {
			want := n
			for want > 0 && dcg < 2*d[want-1]*pruneSlack {
				want--
			}
			if got := nearSuffix(d, dcg); got != want {
				t.Fatalf("n=%d dcg=%v: suffix from %d, want %d", n, dcg, got, want)
			}
		}
	}
}

// TestNearQuantizedMatchesGo checks nearQuantized (SSE assembly on amd64,
// the Go version elsewhere and with -tags purego) against nearQuantizedGo,
// both called block after block as the scan calls them (rows of several
// blocks, so the stride is more than a block), and both against the test's
// definition summed in int64: a member is kept unless the sum over some
// prefix of whole blocks reaches (d·a + b)². Rows span the whole grid
// (±quantLimit, where int16 differences and PMADDWD pairs come closest to
// overflowing), thresholds stop members at every block, and a NaN distance
// keeps its member. A member past the rows panics.
func TestNearQuantizedMatchesGo(t *testing.T) {
	skipIfFused(t)
	rng := rand.New(rand.NewSource(1))
	val := func() int16 {
		switch rng.Intn(4) {
		case 0:
			return quantLimit
		case 1:
			return -quantLimit
		default:
			return int16(rng.Intn(2*quantLimit+1) - quantLimit)
		}
	}
	for _, blocks := range []int{1, 2, 4, 8, 48} {
		for _, n := range []int{0, 1, 5, 64, 257} {
			rowLen := blocks * quantBlock
			c := make([]int16, rowLen)
			for i := range c {
				c[i] = val()
			}
			q := make([]int16, n*rowLen)
			for i := range q {
				if rng.Intn(3) == 0 {
					q[i] = val()
				} else { // near the centre, so that later blocks decide
					q[i] = max(-quantLimit, min(quantLimit, c[i%rowLen]+int16(rng.Intn(201)-100)))
				}
			}
			d := make([]float32, n)
			for i := range d {
				d[i] = float32(rng.ExpFloat64()) * 1e4
			}
			if n > 3 {
				d[3] = float32(math.NaN())
			}
			a, b := float32(0.5+rng.Float64()), float32(rng.Float64()*100)
			cand := make([]int32, 0, n)
			for _, p := range rng.Perm(n) {
				if p == 3 || rng.Intn(4) != 0 {
					cand = append(cand, int32(p))
				}
			}
			var want []int32
			for _, p := range cand {
				tt := float32(d[p]*a) + b
				tt *= tt
				kept := true
				var D int64
				for j := range rowLen {
					e := int64(c[j]) - int64(q[int(p)*rowLen+j])
					D += e * e
					if (j+1)%quantBlock == 0 && float32(int32(D)) >= tt {
						kept = false
						break
					}
				}
				if kept {
					want = append(want, p)
				}
			}
			run := func(f func(c, q []int16, stride int, d []float32, cand []int32, sum []int32, a, b float32) int) []int32 {
				list, sum := slices.Clone(cand), make([]int32, len(cand))
				k := len(list)
				for j := 0; j < rowLen && n > 0; j += quantBlock {
					k = f(c[j:], q[j:], rowLen, d, list[:k], sum[:k], a, b)
				}
				return list[:k]
			}
			got, goList := run(nearQuantized), run(nearQuantizedGo)
			if !slices.Equal(got, goList) || !slices.Equal(goList, want) {
				t.Fatalf("blocks=%d n=%d: kept %v, Go %v, definition %v", blocks, n, got, goList, want)
			}
			if n > 3 && !slices.Contains(want, 3) {
				t.Fatalf("blocks=%d n=%d: a NaN distance ruled its member out", blocks, n)
			}
			if n >= 64 && (len(want) == 0 || len(want) == len(cand)) {
				t.Fatalf("blocks=%d n=%d: %d of %d kept: the case tests nothing", blocks, n, len(want), len(cand))
			}
			if n > 0 {
				for _, bad := range []int32{int32(n), -1} {
					func() {
						defer func() {
							if recover() == nil {
								t.Fatalf("blocks=%d n=%d: member %d of %d did not panic", blocks, n, bad, n)
							}
						}()
						nearQuantized(c, q, rowLen, d, []int32{0, bad}, []int32{0, 0}, a, b)
					}()
				}
			}
		}
	}
}

// TestSqDistBlocksMatchesGo checks sqDistBlocks against sqDistBlocksGo
// bit for bit, with bounds that stop it at every block, none, and NaN
// sums (which never stop it, as in Go), and sqDist against the
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

// TestFirstBelowMatchesGo checks firstBelow (SSE assembly on amd64) against
// firstBelowGo and a plain scan: lengths around the kernel's 16-value
// blocks, the first value below the bound in every position (and none),
// NaN and ±Inf values.
func TestFirstBelowMatchesGo(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 100} {
		for at := -1; at < n; at++ {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(i%5) + 2 // all ≥ 2
				if i%7 == 3 {
					v[i] = float32(math.NaN())
				}
				if i%11 == 4 {
					v[i] = inf
				}
			}
			if at >= 0 {
				v[at] = 1.5
			}
			if at >= 0 && at+1 < n {
				v[at+1] = float32(math.Inf(-1)) // a later value below too
			}
			want := n
			if at >= 0 {
				want = at
			}
			for _, bound := range []float32{2, inf} {
				w := want
				if bound == inf { // every finite value is below +Inf
					w = n
					for i, x := range v {
						if x < inf {
							w = i
							break
						}
					}
				}
				if got := firstBelow(v, bound); got != w {
					t.Errorf("n=%d first below at %d, bound %v: got %d, want %d", n, at, bound, got, w)
				}
				if got := firstBelowGo(v, bound); got != w {
					t.Errorf("n=%d first below at %d, bound %v: Go version got %d, want %d", n, at, bound, got, w)
				}
			}
		}
	}
}
