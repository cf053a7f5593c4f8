//go:build !(goexperiment.simd && amd64)

package banks

// Without the SIMD package the kernels are the Go ones.

func block16(aa, bb []float32) float32 { return block16Go(aa, bb) }
func nearMembers(d []float32, dcg float32, lo int32, cand []int32) int {
	return nearGo(d, dcg, lo, cand)
}
func firstBlocks(c, pre []float32, cand []int32, s []float32) { firstBlocksGo(c, pre, cand, s) }
func axpy(y, x []float32, a float32)                          { axpyGo(y, x, a) }
