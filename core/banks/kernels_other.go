//go:build !amd64 || purego

package banks

import "unsafe"

// Elsewhere the kernels are the Go ones.

func nearQuantized(c, q []int16, stride int, d []float32, cand []int32, sum []int32, a, b float32) int {
	return nearQuantizedGo(c, q, stride, d, cand, sum, a, b)
}
func axpy(y, x []float32, a float32)                        { axpyGo(y, x, a) }
func sqDistBlocks(a, b []float32, s, bound float32) float32 { return sqDistBlocksGo(a, b, s, bound) }

func prefetch(unsafe.Pointer, int) {}

func firstBelow(v []float32, bound float32) int { return firstBelowGo(v, bound) }
