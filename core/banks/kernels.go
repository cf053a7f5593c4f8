package banks

// block16Go is the squared distance of two 16-element blocks, summed in the
// order sqDist uses.
// The SSE kernels round alike where the compiler does not fuse multiply
// and add (GOAMD64 below v3, the default).
func block16Go(aa, bb []float32) float32 {
	aa, bb = aa[:16:16], bb[:16:16]
	d0, d1, d2, d3 := aa[0]-bb[0], aa[1]-bb[1], aa[2]-bb[2], aa[3]-bb[3]
	s0, s1, s2, s3 := d0*d0, d1*d1, d2*d2, d3*d3
	d0, d1, d2, d3 = aa[4]-bb[4], aa[5]-bb[5], aa[6]-bb[6], aa[7]-bb[7]
	s0, s1, s2, s3 = s0+d0*d0, s1+d1*d1, s2+d2*d2, s3+d3*d3
	d0, d1, d2, d3 = aa[8]-bb[8], aa[9]-bb[9], aa[10]-bb[10], aa[11]-bb[11]
	s0, s1, s2, s3 = s0+d0*d0, s1+d1*d1, s2+d2*d2, s3+d3*d3
	d0, d1, d2, d3 = aa[12]-bb[12], aa[13]-bb[13], aa[14]-bb[14], aa[15]-bb[15]
	s0, s1, s2, s3 = s0+d0*d0, s1+d1*d1, s2+d2*d2, s3+d3*d3
	return (s0 + s1) + (s2 + s3)
}

// sqDistBlocksGo adds block16Go of each whole 16-float block of a (and
// the same of b) to s in order and returns s as soon as it reaches bound,
// or after the last block: sqDist's loop, without its tail.
func sqDistBlocksGo(a, b []float32, s, bound float32) float32 {
	b = b[:len(a)/16*16]
	for i := 0; i+16 <= len(a); i += 16 {
		s += block16Go(a[i:i+16:i+16], b[i:i+16:i+16])
		if s >= bound {
			return s
		}
	}
	return s
}

// axpyGo adds a·x to y (len(x) ≥ len(y)).
func axpyGo(y, x []float32, a float32) {
	x = x[:len(y)]
	i := 0
	for ; i+8 <= len(y); i += 8 {
		yy := y[i : i+8 : i+8]
		xx := x[i : i+8 : i+8]
		yy[0] += a * xx[0]
		yy[1] += a * xx[1]
		yy[2] += a * xx[2]
		yy[3] += a * xx[3]
		yy[4] += a * xx[4]
		yy[5] += a * xx[5]
		yy[6] += a * xx[6]
		yy[7] += a * xx[7]
	}
	for ; i < len(y); i++ {
		y[i] += a * x[i]
	}
}

// nearQuantizedGo keeps in cand (in order) the members p it lists that
// one more block of their quantized rows (quantBlock coordinates of each
// member at q[p·stride:], the new centre's in c) cannot rule out, and
// returns how many. sum[i] holds the squared quantized distance of cand[i]
// over the blocks before; the block's squares are added, and p is ruled out
// when the sum reaches (d[p]·a + b)². sum is compacted with cand. The sums
// are int32 and wrap as the SSE kernel's do; a wrapped sum is below the
// true one (only rows far apart get there), so it can only keep a member.
func nearQuantizedGo(c, q []int16, stride int, d []float32, cand []int32, sum []int32, a, b float32) int {
	c = c[:quantBlock:quantBlock]
	sum = sum[:len(cand)]
	kept := 0
	for i, p := range cand {
		t := float32(d[p]*a) + b
		t = t * t
		row := q[int(p)*stride : int(p)*stride+quantBlock : int(p)*stride+quantBlock]
		D := sum[i]
		for j, x := range row {
			e := int32(c[j]) - int32(x)
			D += e * e
		}
		if !(float32(D) >= t) {
			cand[kept], sum[kept] = p, D
			kept++
		}
	}
	return kept
}

// firstBelowGo returns the index of the first value of v below bound, or
// len(v) when none is (NaN is never below).
func firstBelowGo(v []float32, bound float32) int {
	for i, x := range v {
		if x < bound {
			return i
		}
	}
	return len(v)
}
