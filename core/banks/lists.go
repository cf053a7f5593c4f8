package banks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"runtime"

	gmat "gonum.org/v1/gonum/mat"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

// bankLists is the fast search's partition of a bank into lists: the cells
// of a k-means clustering of the projected rows. A query's candidates are
// chosen only among the rows of the FastOptions.Probes lists whose centres
// are nearest to it (an inverted-file search), so stage 1 multiplies by a
// fraction of the bank instead of all of it. The approximation adds to the
// cascade's: a query's neighbour is missed when it lies in a list that was
// not probed.
type bankLists struct {
	probes int
	cells  []listCell
	// probe maps queries (n×C) to their projection with a trailing 1
	// (n×(D+1)) and their nearest lists' numbers (n×probes).
	probe *ort.Session
	// scan maps projected queries (n×(D+1)) and one list's weights
	// ((D+1)×m) to their stage-1 values (n×m); the smallest are kept in
	// Go (ONNX Runtime's TopK took three times as long as the MatMul).
	scan *ort.Session
}

// listCell is one list: its bank rows and their stage-1 weights.
type listCell struct {
	w    []float32 // (D+1)×m: stage1Weights of its rows
	rows []int64   // bank rows, ascending
}

// close frees the sessions.
func (l *bankLists) close() error {
	if l == nil {
		return nil
	}
	return errors.Join(l.probe.Close(), l.scan.Close())
}

// listIterations is the number of k-means (Lloyd) iterations of a
// partition: the lists only steer the search, so a rough clustering does.
const listIterations = 8

// newBankLists partitions the projected bank pbank (R×D, projected with
// proj, C×D) into about R/listRows lists and prepares the probe and scan
// sessions.
func newBankLists(ctx context.Context, rt *ort.Runtime, pbank *mat.Matrix, proj []float32, C, listRows, probes int, seed int64) (*bankLists, error) {
	R, D := pbank.Rows(), pbank.Cols()
	nl := max(1, min(R, (R+listRows/2)/listRows))
	cm, assign, err := kmeans(ctx, pbank, nl, listIterations, rand.New(rand.NewSource(seed)))
	if err != nil {
		return nil, err
	}
	centres := make([][]float64, nl)
	for c := range centres {
		centres[c] = cm.RawRowView(c)
	}
	members := make([][]int64, nl)
	for r, c := range assign {
		members[c] = append(members[c], int64(r))
	}
	// k-means cells of a coreset are far from even (dense regions make
	// lists of several times the mean), and a query probes the large ones
	// most often: split every cell of more than twice listRows rows by
	// clustering it again.
	for c := 0; c < len(members); c++ {
		rows := members[c]
		if len(rows) <= 2*listRows {
			continue
		}
		idx := make([]int, len(rows))
		for i, r := range rows {
			idx[i] = int(r)
		}
		sub, subAssign, err := kmeans(ctx, pbank.Gather(idx), (len(rows)+listRows-1)/listRows, listIterations, rand.New(rand.NewSource(seed+int64(c)+1)))
		if err != nil {
			return nil, err
		}
		parts := make([][]int64, sub.RawMatrix().Rows)
		for i, a := range subAssign {
			parts[a] = append(parts[a], rows[i])
		}
		if len(parts[0]) == len(rows) {
			continue // no split (identical rows)
		}
		members[c], centres[c] = parts[0], sub.RawRowView(0)
		for j := 1; j < len(parts); j++ {
			members = append(members, parts[j])
			centres = append(centres, sub.RawRowView(j))
		}
		c-- // the new first part may still be large
	}
	l := &bankLists{}
	var kept []int // centres of non-empty lists
	for c, rows := range members {
		if len(rows) == 0 {
			continue
		}
		l.cells = append(l.cells, listCell{w: stage1Weights(pbank, rows, len(rows)), rows: rows})
		kept = append(kept, c)
	}
	l.probes = min(probes, len(l.cells))
	// The probe ranks lists by −2·p·c + ‖c‖², as stage 1 ranks rows.
	L := len(kept)
	cm32 := mat.New(L, D)
	for j, c := range kept {
		for d, v := range centres[c] {
			cm32.Row(j)[d] = float32(v)
		}
	}
	wc := stage1Weights(cm32, nil, L)
	g := onnxgraph.New("nn_probe")
	q := g.Input("q", onnxgraph.Float, -1, int64(C))
	p1 := g.Op("Pad", []string{g.Op("MatMul", []string{q, g.Const("proj", proj, int64(C), int64(D))}), g.Ints(0, 0, 0, 1), g.Scalar(1)})
	near := g.OpN("TopK", []string{g.Op("MatMul", []string{p1, g.Const("centres", wc, int64(D+1), int64(L))}), g.Ints(int64(l.probes))}, 2,
		onnxgraph.AttrInt("axis", 1), onnxgraph.AttrInt("largest", 0), onnxgraph.AttrInt("sorted", 0))[1]
	g.Output(p1, onnxgraph.Float)
	g.Output(near, onnxgraph.Int64)
	model, err := g.Marshal()
	if err != nil {
		return nil, fmt.Errorf("list probe graph: %w", err)
	}
	if l.probe, err = rt.NewSession(model, []string{q}, []string{p1, near}); err != nil {
		return nil, fmt.Errorf("list probe session: %w", err)
	}
	g = onnxgraph.New("nn_list_scan")
	p := g.Input("p", onnxgraph.Float, -1, int64(D+1))
	w := g.Input("w", onnxgraph.Float, int64(D+1), -1)
	v := g.OpTo("v", "MatMul", []string{p, w})
	g.Output(v, onnxgraph.Float)
	if model, err = g.Marshal(); err != nil {
		l.probe.Close()
		return nil, fmt.Errorf("list scan graph: %w", err)
	}
	if l.scan, err = rt.NewSession(model, []string{p, w}, []string{v}); err != nil {
		l.probe.Close()
		return nil, fmt.Errorf("list scan session: %w", err)
	}
	return l, nil
}

// candidates fills cv and ci (n×cand, n the rows of q) with each query's
// cand smallest stage-1 values among the rows of its probed lists, in
// ascending order, and their bank rows; slots beyond the probed lists' rows
// get +Inf and −1.
func (l *bankLists) candidates(ctx context.Context, q *mat.Matrix, cand int, cv []float32, ci []int64) error {
	n, P := q.Rows(), l.probes
	out, err := l.probe.Run(ort.F32Tensor(q.RawData(), int64(n), int64(q.Cols())))
	if err != nil {
		return fmt.Errorf("probe lists: %w", err)
	}
	p1, near := out[0].F32, out[1].I64
	D1 := len(p1) / n
	// Group the queries by probed list: a counting sort of (query, probe).
	start := make([]int, len(l.cells)+1)
	for _, c := range near {
		start[c+1]++
	}
	for c := range l.cells {
		start[c+1] += start[c]
	}
	members := make([]int32, len(near)) // queries, grouped by list
	next := append([]int(nil), start[:len(l.cells)]...)
	for i, c := range near {
		members[next[c]] = int32(i / P)
		next[c]++
	}
	inf := float32(math.Inf(1))
	for i := range cv[:n*cand] {
		cv[i], ci[i] = inf, -1
	}
	buf := make([]float32, 0, 1024*D1)
	var vals []float32
	for c, cell := range l.cells {
		if err := ctx.Err(); err != nil {
			return err
		}
		qs := members[start[c]:start[c+1]]
		if len(qs) == 0 {
			continue
		}
		m := len(cell.rows)
		buf = buf[:0]
		for _, qi := range qs {
			buf = append(buf, p1[int(qi)*D1:(int(qi)+1)*D1]...)
		}
		if cap(vals) < len(qs)*m {
			vals = make([]float32, len(qs)*m)
		}
		vals = vals[:len(qs)*m]
		err := l.scan.RunInto([]ort.Tensor{ort.F32Tensor(vals, int64(len(qs)), int64(m))},
			ort.F32Tensor(buf, int64(len(qs)), int64(D1)), ort.F32Tensor(cell.w, int64(D1), int64(m)))
		if err != nil {
			return fmt.Errorf("scan list %d (%d rows) for %d queries: %w", c, m, len(qs), err)
		}
		// A query probes a list once, so the rows of qs touch distinct
		// queries' slots.
		err = parallelFor(ctx, len(qs), runtime.GOMAXPROCS(0), 32, func(lo, hi, _ int) {
			for j := lo; j < hi; j++ {
				o := int(qs[j]) * cand
				keepSmallest(cv[o:o+cand], ci[o:o+cand], vals[j*m:(j+1)*m], cell.rows)
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// keepSmallest merges the values vals of the bank rows rows into tv and ti,
// the smallest values so far in ascending order and their rows.
func keepSmallest(tv []float32, ti []int64, vals []float32, rows []int64) {
	k := len(tv)
	bound := tv[k-1]
	for j := 0; j < len(vals); j++ {
		// Most values are not below the bound once it has settled: skip
		// them 16 at a time.
		if j += firstBelow(vals[j:], bound); j == len(vals) {
			break
		}
		v := vals[j]
		m := k - 1
		for ; m > 0 && v < tv[m-1]; m-- {
			tv[m], ti[m] = tv[m-1], ti[m-1]
		}
		tv[m], ti[m] = v, rows[j]
		bound = tv[k-1]
	}
}

// kmeans clusters the rows of x into k cells with iters Lloyd iterations
// from k distinct rows chosen with rng; it returns the centres (k×D) and
// each row's cell. A cell that empties is restarted at a random row.
func kmeans(ctx context.Context, x *mat.Matrix, k, iters int, rng *rand.Rand) (*gmat.Dense, []int, error) {
	R, D := x.Rows(), x.Cols()
	xd := gmat.NewDense(R, D, nil)
	for r := range R {
		for d, v := range x.Row(r) {
			xd.Set(r, d, float64(v))
		}
	}
	centres := gmat.NewDense(k, D, nil)
	for c, r := range sampleDistinct(rng, R, k) {
		centres.SetRow(c, xd.RawRowView(r))
	}
	assign := make([]int, R)
	dots := gmat.NewDense(R, k, nil)
	norms := make([]float64, k)
	for it := 0; ; it++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("partition the bank: %w", err)
		}
		for c := range k {
			norms[c] = gmat.Dot(centres.RowView(c), centres.RowView(c))
		}
		dots.Mul(xd, centres.T())
		for r := range R {
			row := dots.RawRowView(r)
			best, bi := math.Inf(1), 0
			for c, d := range row {
				if v := norms[c] - 2*d; v < best {
					best, bi = v, c
				}
			}
			assign[r] = bi
		}
		if it == iters {
			return centres, assign, nil
		}
		counts := make([]int, k)
		centres.Zero()
		for r, c := range assign {
			counts[c]++
			row := centres.RawRowView(c)
			for d, v := range xd.RawRowView(r) {
				row[d] += v
			}
		}
		for c, n := range counts {
			if n == 0 {
				centres.SetRow(c, xd.RawRowView(rng.Intn(R)))
				continue
			}
			row := centres.RawRowView(c)
			for d := range row {
				row[d] /= float64(n)
			}
		}
	}
}
