package banks

import (
	"context"
	"math"
	"sync"
	"sync/atomic"

	"github.com/dmad/workstation/core/mat"
)

// group is the set of points whose nearest selected centre is centre
// (centre −1: the initial group, not near any centre yet). A group stores
// its members' quantized rows and distances contiguously, so a scan streams
// through memory instead of gathering rows all over the projected matrix;
// members move between groups by copying (order within a group is free).
//
// The quantized rows (int16, see quantizer) rule out nearly every member a
// new centre does not bring closer, 32 coordinates (one cache line) at a
// time; only the few they cannot rule out are tested on their float32 rows,
// which stay where they are in the projected matrix. Before, the groups
// kept the float rows and a float prefix of 16 coordinates: a scan read 64
// bytes of prefix for every candidate and 512-byte rows for about 22,000
// of them per selection, 95 % of which did not move (the benchmark's
// 760,480 patches).
type group struct {
	centre int32     // selection number of the centre (row of kCenter.centres), −1 for the initial group
	ids    []int32   // member point ids
	q      [][]int16 // member rows quantized, by blocks: q[b] holds coordinates [b·quantBlock, (b+1)·quantBlock) of every member, len(ids)×quantBlock
	d      []float32
	radius float32 // max of d (−1 when empty)
	far    int32   // the point id at radius
}

// workItem is the slice [lo, hi) of one candidate group's members.
type workItem struct {
	g        int
	lo, hi   int
	dcg      float32 // ‖c − centre(g)‖, +Inf for the initial group or without pruning
	kept     int
	farMoved bool // the group's farthest member moved to the new centre
}

// movedBuf collects one worker's points that move to the new centre.
type movedBuf struct {
	ids []int32
	q   [][]int16 // by blocks, as in group
	d   []float32
	// cand, sum and dist are the scan's scratch lists (scanChunk long).
	cand []int32
	sum  []int32
	dist []float32
}

// kCenter is the state of the greedy k-center selection.
type kCenter struct {
	pts      *mat.Matrix // the points' float32 rows, by id
	quant    quantizer
	groups   []*group
	centres  []float32 // selected vectors, one row per selection
	cq       []int16   // the newest centre, quantized
	chosen   []bool
	workers  int
	prune    bool
	items    []workItem
	moved    []movedBuf
	dcg      []float32
	nextFill int

	// Counters for benchmarks: members visited in scanned groups, members
	// the triangle inequality left to test, and float32 rows tested among
	// them (those the quantized rows did not rule out).
	visited, evaluated, full, initial atomic.Int64
}

// newKCenter selects among the rows of pts, which it reads but does not
// change; it holds a quantized copy (2 bytes a coordinate) besides.
func newKCenter(pts *mat.Matrix, workers int, prune bool) *kCenter {
	quant := newQuantizer(pts)
	g := &group{centre: -1, ids: make([]int32, pts.Rows()), d: make([]float32, pts.Rows()), radius: -1, far: -1}
	blocks := quant.rowLen / quantBlock
	g.q = make([][]int16, blocks)
	for b := range g.q {
		g.q[b] = make([]int16, pts.Rows()*quantBlock)
	}
	row := make([]int16, quant.rowLen)
	for i := range g.ids {
		g.ids[i] = int32(i)
		quant.quantize(row, pts.Row(i))
		for b := range g.q {
			copy(g.q[b][i*quantBlock:(i+1)*quantBlock], row[b*quantBlock:])
		}
	}
	moved := make([]movedBuf, workers)
	for w := range moved {
		moved[w].q = make([][]int16, blocks)
		moved[w].cand = make([]int32, scanChunk)
		moved[w].sum = make([]int32, scanChunk)
		moved[w].dist = make([]float32, scanChunk)
	}
	return &kCenter{
		pts: pts, quant: quant, groups: []*group{g}, chosen: make([]bool, pts.Rows()),
		cq: make([]int16, quant.rowLen), workers: workers, prune: prune, moved: moved,
	}
}

// move copies member src over member dst (id, distance, quantized row).
func (g *group) move(dst, src int) {
	g.ids[dst], g.d[dst] = g.ids[src], g.d[src]
	for _, q := range g.q {
		copy(q[dst*quantBlock:(dst+1)*quantBlock], q[src*quantBlock:(src+1)*quantBlock])
	}
}

// init sets every distance to the mean distance to the start points
// (PatchCore's approximate anchor distances).
func (k *kCenter) init(ctx context.Context, starts []int) error {
	g := k.groups[0]
	sv := make([][]float32, len(starts))
	for j, s := range starts {
		sv[j] = k.pts.Row(s)
	}
	inf := float32(math.Inf(1))
	err := parallelFor(ctx, len(g.ids), k.workers, 1024, func(lo, hi, _ int) {
		for i := lo; i < hi; i++ {
			x := k.pts.Row(int(g.ids[i]))
			var s float64
			for _, st := range sv {
				s += math.Sqrt(float64(sqDist(x, st, inf)))
			}
			g.d[i] = float32(s / float64(len(sv)))
		}
	})
	if err != nil {
		return err
	}
	for i, d := range g.d {
		if d > g.radius {
			g.radius, g.far = d, g.ids[i]
		}
	}
	return nil
}

// selectNext selects the farthest point and updates the groups.
func (k *kCenter) selectNext() int {
	var best *group
	for _, g := range k.groups {
		if g.far >= 0 && (best == nil || g.radius > best.radius || (g.radius == best.radius && g.far < best.far)) {
			best = g
		}
	}
	if best == nil || best.radius <= 0 || k.chosen[best.far] {
		// Everything left coincides with a centre: fill with unchosen points.
		for k.chosen[k.nextFill] {
			k.nextFill++
		}
		k.chosen[k.nextFill] = true
		return k.nextFill
	}
	sel := best.far
	k.chosen[sel] = true
	k.centres = append(k.centres, k.pts.Row(int(sel))...)
	k.quant.quantize(k.cq, k.pts.Row(int(sel)))
	k.update(sel)
	return int(sel)
}

// pruneSlack keeps the triangle-inequality tests conservative under float32
// rounding.
const pruneSlack = 1 + 1e-4

// scanChunk is the size of a work item: groups are split so that workers
// share large groups.
const scanChunk = 4096

func (k *kCenter) update(sel int32) {
	dim := k.pts.Cols()
	ci := len(k.centres)/dim - 1
	c := k.centres[ci*dim : (ci+1)*dim]
	inf := float32(math.Inf(1))
	// Distances from the new centre to every group's centre (a lower bound
	// when the sum stopped early: still enough to prune the group).
	if cap(k.dcg) < len(k.groups) {
		k.dcg = make([]float32, len(k.groups), 2*len(k.groups))
	}
	k.dcg = k.dcg[:len(k.groups)]
	if k.prune {
		calc := func(lo, hi, _ int) {
			for gi := lo; gi < hi; gi++ {
				g := k.groups[gi]
				if g.centre < 0 {
					k.dcg[gi] = inf
					continue
				}
				lim := 2 * g.radius * pruneSlack
				s := sqDist(c, k.centres[int(g.centre)*dim:int(g.centre+1)*dim], lim*lim)
				k.dcg[gi] = float32(math.Sqrt(float64(s)))
			}
		}
		if len(k.groups) >= 4096 && k.workers > 1 {
			_ = parallelFor(context.Background(), len(k.groups), k.workers, 1024, calc)
		} else {
			calc(0, len(k.groups), 0)
		}
	}
	// Work items over the candidate groups.
	k.items = k.items[:0]
	total := 0
	for gi, g := range k.groups {
		dcg := inf
		if k.prune && g.centre >= 0 {
			dcg = k.dcg[gi]
			if dcg >= 2*g.radius*pruneSlack {
				continue
			}
		}
		for lo := 0; lo < len(g.ids); lo += scanChunk {
			k.items = append(k.items, workItem{g: gi, lo: lo, hi: min(lo+scanChunk, len(g.ids)), dcg: dcg})
		}
		total += len(g.ids)
	}
	for w := range k.moved {
		m := &k.moved[w]
		m.ids, m.d = m.ids[:0], m.d[:0]
		for b := range m.q {
			m.q[b] = m.q[b][:0]
		}
	}
	var next atomic.Int64
	work := func(w int) {
		mv := &k.moved[w]
		for {
			it := int(next.Add(1) - 1)
			if it >= len(k.items) {
				break
			}
			k.scan(&k.items[it], c, mv)
		}
	}
	if total >= 2*scanChunk && k.workers > 1 {
		var wg sync.WaitGroup
		for w := 1; w < k.workers; w++ {
			wg.Add(1)
			go func() { defer wg.Done(); work(w) }()
		}
		work(0)
		wg.Wait()
	} else {
		work(0)
	}
	// Close the holes the moves left in the scanned groups and refresh
	// their radii.
	for a := 0; a < len(k.items); {
		b := a
		for b < len(k.items) && k.items[b].g == k.items[a].g {
			b++
		}
		k.compact(k.groups[k.items[a].g], k.items[a:b])
		a = b
	}
	// The new centre's group.
	ng := &group{centre: int32(ci), radius: -1, far: -1}
	size := 0
	for _, m := range k.moved {
		size += len(m.ids)
	}
	ng.ids = make([]int32, 0, size)
	ng.q = make([][]int16, len(k.cq)/quantBlock)
	for b := range ng.q {
		ng.q[b] = make([]int16, 0, size*quantBlock)
	}
	ng.d = make([]float32, 0, size)
	for _, m := range k.moved {
		ng.ids = append(ng.ids, m.ids...)
		for b := range ng.q {
			ng.q[b] = append(ng.q[b], m.q[b]...)
		}
		ng.d = append(ng.d, m.d...)
		for j, d := range m.d {
			if id := m.ids[j]; d > ng.radius || (d == ng.radius && id < ng.far) {
				ng.radius, ng.far = d, id
			}
		}
	}
	// Drop emptied groups (the initial group too once it empties).
	live := k.groups[:0]
	for _, g := range k.groups {
		if len(g.ids) > 0 {
			live = append(live, g)
		}
	}
	clear(k.groups[len(live):])
	k.groups = live
	if len(ng.ids) > 0 {
		k.groups = append(k.groups, ng)
	}
}

// scan tests one work item's members against the new centre c and moves
// those it brings closer into mv, in three passes: the members the
// triangle inequality does not exclude are listed ([nearMembers]), those
// their quantized rows cannot rule out are kept ([nearQuantized]), and
// those tested in full on their float32 rows; then the moves are made,
// highest position first, each filling its hole with the item's last
// member. The item records whether the group's farthest member moved:
// only then must the group's radius be found again (see compact).
func (k *kCenter) scan(item *workItem, c []float32, mv *movedBuf) {
	g := k.groups[item.g]
	lo, hi := item.lo, item.hi
	cand := mv.cand[:hi-lo]
	n := hi - lo
	if math.IsInf(float64(item.dcg), 1) {
		for p := range cand {
			cand[p] = int32(lo + p)
		}
	} else {
		n = nearMembers(g.d[lo:hi], item.dcg, int32(lo), cand)
	}
	evaluated := n
	sum := mv.sum[:n]
	clear(sum)
	for b, q := range g.q {
		if n == 0 {
			break
		}
		n = nearQuantized(k.cq[b*quantBlock:(b+1)*quantBlock], q, g.d, cand[:n], sum[:n], k.quant.a, k.quant.b)
	}
	cand = cand[:n]
	moves := 0
	dist := mv.dist[:n]
	for _, p := range cand {
		// The same sum as before the quantized test existed, so the
		// selection is the exact greedy one.
		d := g.d[p]
		if s := sqDist(c, k.pts.Row(int(g.ids[p])), d*d); s < d*d {
			// The lists' earlier entries are free.
			cand[moves], dist[moves] = p, float32(math.Sqrt(float64(s)))
			moves++
		}
	}
	end := hi
	for i := moves - 1; i >= 0; i-- {
		p := int(cand[i])
		id := g.ids[p]
		item.farMoved = item.farMoved || id == g.far
		mv.ids = append(mv.ids, id)
		for b, q := range g.q {
			mv.q[b] = append(mv.q[b], q[p*quantBlock:(p+1)*quantBlock]...)
		}
		mv.d = append(mv.d, dist[i])
		end--
		if p != end {
			g.move(p, end)
		}
	}
	item.kept = end - lo
	k.visited.Add(int64(hi - lo))
	k.evaluated.Add(int64(evaluated))
	k.full.Add(int64(n))
	if g.centre < 0 {
		k.initial.Add(int64(hi - lo))
	}
}

// compact makes a scanned group's kept members contiguous again: the
// items' kept members are [lo, lo+kept) and the holes [lo+kept, hi); holes
// below the new length are filled with kept members from above it, so only
// as many members move as there were moves.
func (k *kCenter) compact(g *group, items []workItem) {
	n, farMoved := 0, false
	for _, it := range items {
		n += it.kept
		farMoved = farMoved || it.farMoved
	}
	// Kept members at positions ≥ n, taken from the last item backwards.
	src := len(items) - 1
	srcPos := items[src].lo + items[src].kept - 1
	nextSrc := func() int {
		for srcPos < items[src].lo || srcPos < n {
			if srcPos < n {
				return -1
			}
			src--
			srcPos = items[src].lo + items[src].kept - 1
		}
		srcPos--
		return srcPos + 1
	}
	for _, it := range items {
		for h := it.lo + it.kept; h < it.hi && h < n; h++ {
			s := nextSrc()
			if s < 0 {
				panic("kcenter: compaction lost track of members")
			}
			g.move(h, s)
		}
	}
	g.ids, g.d = g.ids[:n], g.d[:n]
	for b := range g.q {
		g.q[b] = g.q[b][:n*quantBlock]
	}
	if farMoved {
		// Members that stay keep their distances: the radius changes
		// only when the farthest one leaves.
		g.radius, g.far = -1, -1
		for i, d := range g.d {
			if id := g.ids[i]; d > g.radius || (d == g.radius && id < g.far) {
				g.radius, g.far = d, id
			}
		}
	}
	// Give memory back once a group has shrunk to a quarter of its array.
	if n > 0 && cap(g.ids) > 4*n && cap(g.ids) > 1024 {
		g.ids = append([]int32(nil), g.ids...)
		g.d = append([]float32(nil), g.d...)
		for b := range g.q {
			g.q[b] = append([]int16(nil), g.q[b]...)
		}
	}
}
