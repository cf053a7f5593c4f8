//go:build !amd64 || purego

package banks

// Elsewhere the kernels are the Go ones.

func firstBlocks(c, pre []float32, cand []int32, s []float32) { firstBlocksGo(c, pre, cand, s) }
func axpy(y, x []float32, a float32)                          { axpyGo(y, x, a) }
func sqDistBlocks(a, b []float32, s, bound float32) float32   { return sqDistBlocksGo(a, b, s, bound) }
