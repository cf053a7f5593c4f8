//go:build !purego

package banks

import "unsafe"

// The amd64 kernels are in SSE assembly (kernels_amd64.s); TestNearQuantizedMatchesGo,
// TestSqDistBlocksMatchesGo and TestAxpyMatchesGo check them against the Go
// versions bit for bit.

// The assembly adds 16 quantized coordinates (32 bytes) before it compares.
var _ = [1]struct{}{}[quantBlock-16]

//go:noescape
func nearQuantizedSSE(c, q *int16, stride int, d *float32, cand *int32, sum *int32, n int, a, b float32, rows int) int

//go:noescape
func sqDistBlocksSSE(a, b *float32, blocks int, s, bound float32) float32

//go:noescape
func axpySSE(y, x *float32, a float32, blocks int)

// nearQuantized is nearQuantizedGo. The kernel checks that every member's
// block lies within q and d and returns −1 when one does not.
func nearQuantized(c, q []int16, stride int, d []float32, cand []int32, sum []int32, a, b float32) int {
	if len(cand) == 0 {
		return 0
	}
	if stride < quantBlock || len(q) < quantBlock {
		panic("banks: nearQuantized: bad stride or rows")
	}
	c, sum = c[:quantBlock:quantBlock], sum[:len(cand)]
	// Members p < rows have their block at q[p·stride : p·stride+quantBlock].
	rows := min((len(q)-quantBlock)/stride+1, len(d))
	n := nearQuantizedSSE(&c[0], &q[0], stride, &d[0], &cand[0], &sum[0], len(cand), a, b, rows)
	if n < 0 {
		panic("banks: nearQuantized: member out of range")
	}
	return n
}

// sqDistBlocks is sqDistBlocksGo.
func sqDistBlocks(a, b []float32, s, bound float32) float32 {
	blocks := len(a) / 16
	if blocks == 0 {
		return s
	}
	b = b[:blocks*16]
	return sqDistBlocksSSE(&a[0], &b[0], blocks, s, bound)
}

// axpy is axpyGo.
func axpy(y, x []float32, a float32) {
	x = x[:len(y)]
	blocks := len(y) / 4
	if blocks > 0 {
		axpySSE(&y[0], &x[0], a, blocks)
	}
	axpyGo(y[blocks*4:], x[blocks*4:], a)
}

//go:noescape
func firstBelowSSE(v *float32, blocks int, bound float32) int

// firstBelow is firstBelowGo.
func firstBelow(v []float32, bound float32) int {
	blocks := len(v) / 16
	i := 0
	if blocks > 0 {
		i = firstBelowSSE(&v[0], blocks, bound) * 16
	}
	return i + firstBelowGo(v[i:], bound)
}

//go:noescape
func prefetchSSE(addr unsafe.Pointer, lines int)

// prefetch asks for the cache lines of the bytes bytes from addr.
func prefetch(addr unsafe.Pointer, bytes int) {
	if lines := (int(uintptr(addr))&63 + bytes + 63) / 64; lines > 0 {
		prefetchSSE(addr, lines)
	}
}
