//go:build !purego

package banks

// The amd64 kernels are in SSE assembly (kernels_amd64.s); TestKernelsMatchGo,
// TestSqDistBlocksMatchesGo and TestAxpyMatchesGo check them against the Go
// versions bit for bit.

// The assembly reads prefixes 16 floats (64 bytes) apart.
var _ = [1]struct{}{}[prefixDim-16]

//go:noescape
func firstBlocksSSE(c, pre *float32, cand *int32, n int, s *float32)

//go:noescape
func sqDistBlocksSSE(a, b *float32, blocks int, s, bound float32) float32

//go:noescape
func axpySSE(y, x *float32, a float32, blocks int)

// firstBlocks is firstBlocksGo.
func firstBlocks(c, pre []float32, cand []int32, s []float32) {
	if len(cand) == 0 {
		return
	}
	c, s = c[:16:16], s[:len(cand)]
	for _, p := range cand {
		if int(p) < 0 || (int(p)+1)*prefixDim > len(pre) {
			panic("banks: firstBlocks: member out of range")
		}
	}
	firstBlocksSSE(&c[0], &pre[0], &cand[0], len(cand), &s[0])
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
