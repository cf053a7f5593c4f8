package banks

import (
	"context"
	"math"
	"slices"

	"github.com/dmad/workstation/core/mat"
)

// quantLimit is the largest quantized magnitude: two quantized values
// differ by at most 2·quantLimit, which fits an int16, and the sum of two
// such squared differences fits an int32 (the SSE kernel's PMADDWD).
const quantLimit = 16383

// quantBlock is how many quantized coordinates the test adds before it
// compares: 16 int16, 32 bytes (blocks of 32 coordinates ruled out more
// members with their first block but, at 64 bytes a member, streamed
// slower: the selection waits on memory). Rows are padded with zeros to a
// multiple of it.
const quantBlock = 16

// quantizer maps float32 rows to int16 rows on one grid (x ≈ scale·q for
// every coordinate) and bounds what that costs: no row is farther than
// maxErr from its grid point, so for two rows x and y
//
//	‖x − y‖ ≥ scale·‖q(x) − q(y)‖ − 2·maxErr.
//
// The k-center scan uses this to rule out members a new centre cannot
// bring closer without reading their float32 rows.
type quantizer struct {
	scale  float64 // grid step
	inv    float64 // 1/scale
	rowLen int     // quantized row length: the columns rounded up to quantBlock
	maxErr float64 // the largest ‖x − scale·q(x)‖ over the rows (+Inf with a non-finite coordinate)
	// a and b are the rule-out test's coefficients: a member at distance
	// d from its centre cannot come closer to the new one when the
	// quantized squared distance D ≥ (d·a + b)² (see nearQuantizedGo).
	a, b float32
}

// newQuantizer fits the grid to the largest finite magnitude among the
// rows of pts, quantizes every row, hands it to store (when not nil; called
// from workers goroutines at once, each row once) and measures the rounding
// error of every row.
func newQuantizer(pts *mat.Matrix, workers int, store func(i int, q []int16)) quantizer {
	workers = max(1, workers)
	part := make([]float64, workers)
	_ = parallelFor(context.Background(), pts.Rows(), workers, 4096, func(lo, hi, w int) {
		m := part[w]
		for _, v := range pts.RawData()[lo*pts.Cols() : hi*pts.Cols()] {
			if a := math.Abs(float64(v)); a > m && !math.IsInf(a, 1) {
				m = a
			}
		}
		part[w] = m
	})
	maxAbs := slices.Max(part)
	qz := quantizer{scale: 1, rowLen: quantRowLen(pts.Cols())}
	if maxAbs > 0 {
		qz.scale = maxAbs / quantLimit
	}
	qz.inv = 1 / qz.scale
	clear(part)
	rows := make([][]int16, workers)
	_ = parallelFor(context.Background(), pts.Rows(), workers, 4096, func(lo, hi, w int) {
		if rows[w] == nil {
			rows[w] = make([]int16, qz.rowLen)
		}
		row := rows[w]
		for i := lo; i < hi; i++ {
			x := pts.Row(i)
			qz.quantize(row, x)
			var e float64
			for j, v := range x {
				r := float64(v) - qz.scale*float64(row[j])
				e += r * r
			}
			if e = math.Sqrt(e); !(e <= part[w]) { // NaN too
				part[w] = e
				if math.IsNaN(e) {
					part[w] = math.Inf(1)
				}
			}
			if store != nil {
				store(i, row)
			}
		}
	})
	qz.maxErr = slices.Max(part)
	// Slack for float32 rounding: 2·10⁻⁴ of d for the distance sums (128
	// float32 terms round well within 10⁻⁵ relatively), and b, rounded
	// up, for the two rows' grid errors.
	qz.a = float32((1 + 2e-4) * qz.inv)
	qz.b = math.Nextafter32(float32(2*qz.maxErr*(1+1e-6)*qz.inv), float32(math.Inf(1)))
	return qz
}

// quantize writes the grid point of x to q (len rowLen; the padding is
// zero). Non-finite coordinates map to 0 (maxErr is then +Inf, which turns
// the rule-out test off).
func (qz quantizer) quantize(q []int16, x []float32) {
	for j, v := range x {
		r := math.RoundToEven(float64(v) * qz.inv)
		switch {
		case r != r || math.IsInf(r, 0):
			q[j] = 0
		case r > quantLimit:
			q[j] = quantLimit
		case r < -quantLimit:
			q[j] = -quantLimit
		default:
			q[j] = int16(r)
		}
	}
	clear(q[len(x):])
}

// quantRowLen is the length of a quantized row of cols coordinates: cols
// rounded up to whole blocks.
func quantRowLen(cols int) int { return (cols + quantBlock - 1) / quantBlock * quantBlock }
