//go:build goexperiment.simd && amd64

package banks

import (
	"math/bits"
	"simd/archsimd"
)

// The kernels on AVX (GOEXPERIMENT=simd builds; see the Makefile). Each
// rounds exactly as its Go version does (the same operations in the same
// order, never a fused multiply-add), so the selection does not depend on
// the build: TestKernelsMatchGo and TestAxpyMatchesGo check it bit for bit.

// hasAVX says whether the kernels may use AVX; it is read, never written,
// after package initialisation.
var hasAVX = archsimd.X86.AVX()

// block16 is block16Go: lanes j of the four 4-lane squares hold the four
// partial sums block16Go keeps, added in its order.
func block16(aa, bb []float32) float32 {
	if !hasAVX {
		return block16Go(aa, bb)
	}
	s := squares4(aa[:16:16], bb[:16:16])
	s = s.AddPairs(s)
	s = s.AddPairs(s)
	return s.GetElem(0)
}

// squares4 is block16Go's four partial sums s0..s3 as one vector. Only
// 128-bit operations: 256-bit ones leave the upper halves of the vector
// registers dirty, which slows the scalar code after them many times over.
func squares4(aa, bb []float32) archsimd.Float32x4 {
	q0 := archsimd.LoadFloat32x4Slice(aa[0:4]).Sub(archsimd.LoadFloat32x4Slice(bb[0:4]))
	q1 := archsimd.LoadFloat32x4Slice(aa[4:8]).Sub(archsimd.LoadFloat32x4Slice(bb[4:8]))
	q2 := archsimd.LoadFloat32x4Slice(aa[8:12]).Sub(archsimd.LoadFloat32x4Slice(bb[8:12]))
	q3 := archsimd.LoadFloat32x4Slice(aa[12:16]).Sub(archsimd.LoadFloat32x4Slice(bb[12:16]))
	return q0.Mul(q0).Add(q1.Mul(q1)).Add(q2.Mul(q2)).Add(q3.Mul(q3))
}

// nearMembers is nearGo, testing four members at a time.
func nearMembers(d []float32, dcg float32, lo int32, cand []int32) int {
	if !hasAVX {
		return nearGo(d, dcg, lo, cand)
	}
	two := archsimd.BroadcastFloat32x4(2)
	slack := archsimd.BroadcastFloat32x4(pruneSlack)
	limit := archsimd.BroadcastFloat32x4(dcg)
	n, p := 0, 0
	for ; p+4 <= len(d); p += 4 {
		m := uint(limit.Less(archsimd.LoadFloat32x4Slice(d[p : p+4]).Mul(two).Mul(slack)).ToBits())
		for m != 0 {
			cand[n] = lo + int32(p+bits.TrailingZeros(m))
			n++
			m &= m - 1
		}
	}
	return n + nearGo(d[p:], dcg, lo+int32(p), cand[n:])
}

// firstBlocks is firstBlocksGo, four members at a time: their partial
// sums are reduced together ((s0+s1)+(s2+s3) for each, as block16Go adds
// them).
func firstBlocks(c, pre []float32, cand []int32, s []float32) {
	if !hasAVX {
		firstBlocksGo(c, pre, cand, s)
		return
	}
	c = c[:16:16]
	c0, c1 := archsimd.LoadFloat32x4Slice(c[0:4]), archsimd.LoadFloat32x4Slice(c[4:8])
	c2, c3 := archsimd.LoadFloat32x4Slice(c[8:12]), archsimd.LoadFloat32x4Slice(c[12:16])
	sums := func(p int32) archsimd.Float32x4 {
		x := pre[int(p)*prefixDim : int(p)*prefixDim+16 : int(p)*prefixDim+16]
		q0 := c0.Sub(archsimd.LoadFloat32x4Slice(x[0:4]))
		q1 := c1.Sub(archsimd.LoadFloat32x4Slice(x[4:8]))
		q2 := c2.Sub(archsimd.LoadFloat32x4Slice(x[8:12]))
		q3 := c3.Sub(archsimd.LoadFloat32x4Slice(x[12:16]))
		return q0.Mul(q0).Add(q1.Mul(q1)).Add(q2.Mul(q2)).Add(q3.Mul(q3))
	}
	i := 0
	for ; i+4 <= len(cand); i += 4 {
		a, b := sums(cand[i]), sums(cand[i+1])
		e, f := sums(cand[i+2]), sums(cand[i+3])
		// [a0+a1, a2+a3, b0+b1, b2+b3] and the same for e, f; then
		// [(a0+a1)+(a2+a3), (b0+b1)+(b2+b3), …].
		a.AddPairs(b).AddPairs(e.AddPairs(f)).StoreSlice(s[i : i+4])
	}
	for ; i < len(cand); i++ {
		p := int(cand[i])
		s[i] = block16(c, pre[p*prefixDim:p*prefixDim+16])
	}
}

// axpy is axpyGo, eight elements at a time (the same multiply, then add,
// for each element).
func axpy(y, x []float32, a float32) {
	if !hasAVX || len(y) < 8 {
		axpyGo(y, x, a)
		return
	}
	x = x[:len(y)]
	av := archsimd.BroadcastFloat32x8(a)
	i := 0
	for ; i+8 <= len(y); i += 8 {
		yv := archsimd.LoadFloat32x8Slice(y[i : i+8])
		yv.Add(av.Mul(archsimd.LoadFloat32x8Slice(x[i : i+8]))).StoreSlice(y[i : i+8])
	}
	// 256-bit operations leave the registers' upper halves dirty: clear
	// them before scalar code runs again.
	archsimd.ClearAVXUpperBits()
	axpyGo(y[i:], x[i:], a)
}
