package banks

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/dmad/workstation/core/mat"
)

// group is the set of points whose nearest selected centre is centre
// (centre −1: the initial group, not near any centre yet). A group stores
// its members' quantized rows and distances contiguously, so a scan streams
// through memory instead of gathering rows all over the projected matrix;
// members move between groups by copying.
//
// The quantized rows (int16, see quantizer) rule out nearly every member a
// new centre does not bring closer, 16 coordinates at a time; only the few
// they cannot rule out are tested on their float32 rows, which stay where
// they are in the projected matrix. The first 16 coordinates of every
// member are kept in a dense array of their own (32 bytes a member), which
// the scan streams through; the rest of each row (rest) is read only for
// the members the first block does not rule out. Before, the groups kept
// the float rows and a float prefix of 16 coordinates: a scan read 64 bytes
// of prefix for every candidate and 512-byte rows for about 22,000 of them
// per selection, 95 % of which did not move (the benchmark's 760,480
// patches); now about 500 float rows.
//
// A centre's group is sorted by distance, nearest first (members that
// stay keep their distances; those that move away are removed in order).
// A new centre at distance dcg from the group's can only bring closer the
// members with dcg < 2·d (triangle inequality): a suffix of the group,
// found by binary search, so the scan never visits the rest, and closing
// the holes moves only members of that suffix. The initial group is not
// sorted (it is scanned whole).
type group struct {
	centre  int32     // selection number of the centre (row of kCenter.centres), −1 for the initial group
	ids     []int32   // member point ids (−1 for a member that moved away, until compact)
	first   []int16   // the members' quantized rows' first blocks, len(ids)×quantBlock (dense, for the scan's first pass)
	rest    []int16   // the rest of their quantized rows, len(ids)×restLen
	restLen int       // quantizer.rowLen − quantBlock
	d       []float32 // distances to the centre; a centre's group: non-decreasing, ties by id from the largest
	radius  float32   // max of d over the members (−1 when empty)
	far     int32     // the member at radius (the smallest id there)
}

// workItem is the slice [lo, hi) of one candidate group's members.
type workItem struct {
	g        int
	lo, hi   int
	moves    int
	farMoved bool // the group's farthest member moved to the new centre
	alone    bool // the group's only item: the scan compacts the group
	// dAt and firstAt are where the item's distances and first blocks
	// start (for prefetchItem).
	dAt, firstAt unsafe.Pointer
}

// movedBuf collects one worker's points that move to the new centre.
type movedBuf struct {
	ids   []int32
	first []int16 // as in group
	rest  []int16
	d     []float32
	// cand and sum are the scan's scratch lists (scanChunk long).
	cand []int32
	sum  []int32
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
	start    []int // per group, where the scan starts (len(ids): not at all)
	nextFill int

	// Counters for benchmarks: members tested (those of the scanned
	// groups' suffixes the triangle inequality leaves), float32 rows
	// tested among them (those the quantized rows did not rule out), and
	// tests in the initial group.
	visited, full, initial atomic.Int64
}

// newKCenter selects among the rows of pts, which it reads but does not
// change; it holds a quantized copy (2 bytes a coordinate) besides.
func newKCenter(pts *mat.Matrix, workers int, prune bool) *kCenter {
	g := &group{centre: -1, ids: make([]int32, pts.Rows()), d: make([]float32, pts.Rows()), radius: -1, far: -1}
	rl := quantRowLen(pts.Cols()) - quantBlock
	g.first = make([]int16, pts.Rows()*quantBlock)
	g.rest, g.restLen = make([]int16, pts.Rows()*rl), rl
	quant := newQuantizer(pts, workers, func(i int, row []int16) {
		g.ids[i] = int32(i)
		copy(g.first[i*quantBlock:(i+1)*quantBlock], row)
		copy(g.rest[i*rl:(i+1)*rl], row[quantBlock:])
	})
	moved := make([]movedBuf, workers)
	for w := range moved {
		moved[w].cand = make([]int32, scanChunk)
		moved[w].sum = make([]int32, scanChunk)
	}
	return &kCenter{
		pts: pts, quant: quant, groups: []*group{g}, chosen: make([]bool, pts.Rows()),
		cq: make([]int16, quant.rowLen), workers: workers, prune: prune, moved: moved,
	}
}

// move copies member src over member dst (id, distance, quantized row).
func (g *group) move(dst, src int) {
	g.ids[dst], g.d[dst] = g.ids[src], g.d[src]
	// An array assignment: inline moves, not a memmove call.
	*(*[quantBlock]int16)(g.first[dst*quantBlock:]) = *(*[quantBlock]int16)(g.first[src*quantBlock:])
	rl := g.restLen
	copy(g.rest[dst*rl:(dst+1)*rl], g.rest[src*rl:(src+1)*rl])
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
	// Where each group's candidate suffix starts: from the distance of the
	// new centre to the group's centre (a lower bound when the sum stopped
	// early: still enough to prune the group); the whole group without
	// pruning, none when the group is pruned.
	if cap(k.start) < len(k.groups) {
		k.start = make([]int, len(k.groups), 2*len(k.groups))
	}
	k.start = k.start[:len(k.groups)]
	if k.prune {
		calc := func(lo, hi, _ int) {
			for gi := lo; gi < hi; gi++ {
				g := k.groups[gi]
				if g.centre < 0 {
					k.start[gi] = 0
					continue
				}
				lim := 2 * g.radius * pruneSlack
				s := sqDist(c, k.centres[int(g.centre)*dim:int(g.centre+1)*dim], lim*lim)
				dcg := float32(math.Sqrt(float64(s)))
				if dcg >= lim {
					k.start[gi] = len(g.ids)
				} else {
					k.start[gi] = nearSuffix(g.d, dcg)
				}
			}
		}
		// On the workers from a thousand groups on: each costs about 100 ns
		// (a distance between centres, a binary search), and one
		// goroutine start costs a few microseconds.
		if len(k.groups) >= 1024 && k.workers > 1 {
			_ = parallelFor(context.Background(), len(k.groups), k.workers, 256, calc)
		} else {
			calc(0, len(k.groups), 0)
		}
	} else {
		clear(k.start)
	}
	// Work items over the candidate suffixes. A group whose suffix is one
	// item is compacted by the scan itself, on the workers.
	k.items = k.items[:0]
	total := 0
	for gi, g := range k.groups {
		start := k.start[gi]
		alone := len(g.ids)-start <= scanChunk
		for lo := start; lo < len(g.ids); lo += scanChunk {
			k.items = append(k.items, workItem{g: gi, lo: lo, hi: min(lo+scanChunk, len(g.ids)), alone: alone,
				dAt: unsafe.Pointer(&g.d[lo]), firstAt: unsafe.Pointer(&g.first[lo*quantBlock])})
		}
		total += len(g.ids) - start
	}
	for w := range k.moved {
		m := &k.moved[w]
		m.ids, m.d = m.ids[:0], m.d[:0]
		m.first, m.rest = m.first[:0], m.rest[:0]
	}
	var next atomic.Int64
	work := func(w int) {
		mv := &k.moved[w]
		for {
			it := int(next.Add(1) - 1)
			if it >= len(k.items) {
				break
			}
			for _, ahead := range [...]int{it + 2, it + 3} {
				if ahead < len(k.items) {
					prefetchItem(&k.items[ahead])
				}
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
	// The new centre's group is built on another goroutine while the
	// groups of several items close their holes (they share nothing).
	var ng *group
	built := make(chan struct{})
	go func() {
		defer close(built)
		ng = k.newGroup(int32(ci))
	}()
	// Close the holes the moves left in the groups of several items and
	// refresh their radii.
	for a := 0; a < len(k.items); {
		g := k.groups[k.items[a].g]
		moves, farMoved, alone := 0, false, k.items[a].alone
		for ; a < len(k.items) && k.groups[k.items[a].g] == g; a++ {
			moves += k.items[a].moves
			farMoved = farMoved || k.items[a].farMoved
		}
		if alone {
			continue
		}
		if moves > 0 {
			g.compact(0)
		}
		if farMoved {
			g.refreshRadius()
		}
	}
	k.groups = slices.DeleteFunc(k.groups, func(g *group) bool { return len(g.ids) == 0 })
	<-built
	if ng != nil {
		k.groups = append(k.groups, ng)
	}
}

// newGroup is the group of centre ci: the members the scan moved, sorted
// nearest first (nil when none moved).
func (k *kCenter) newGroup(ci int32) *group {
	size := 0
	for _, m := range k.moved {
		size += len(m.ids)
	}
	if size == 0 {
		return nil
	}
	type member struct {
		d      float32
		id     int32
		worker int
		pos    int
	}
	ms := make([]member, 0, size)
	for w, m := range k.moved {
		for j, id := range m.ids {
			ms = append(ms, member{m.d[j], id, w, j})
		}
	}
	// Nearest first; among equal distances the largest id first, so that
	// the last member is the farthest with the smallest id (the far rule).
	// Moved members' distances are finite.
	slices.SortFunc(ms, func(x, y member) int {
		return cmp.Or(cmp.Compare(x.d, y.d), cmp.Compare(y.id, x.id))
	})
	rl := k.quant.rowLen - quantBlock
	ng := &group{centre: ci, ids: make([]int32, size), d: make([]float32, size),
		first: make([]int16, size*quantBlock), rest: make([]int16, size*rl), restLen: rl}
	for i, m := range ms {
		ng.ids[i], ng.d[i] = m.id, m.d
		mv := &k.moved[m.worker]
		copy(ng.first[i*quantBlock:(i+1)*quantBlock], mv.first[m.pos*quantBlock:])
		copy(ng.rest[i*rl:(i+1)*rl], mv.rest[m.pos*rl:])
	}
	ng.radius, ng.far = ng.d[size-1], ng.ids[size-1]
	return ng
}

// scan tests one work item's members against the new centre c and moves
// those it brings closer into mv: those their quantized rows cannot rule
// out are kept ([nearQuantized]) and tested in full on their float32 rows;
// each member that moves leaves a hole (id −1) until update compacts the
// group. The item records its moves and whether the group's farthest
// member moved: only then must the group's radius be found again.
func (k *kCenter) scan(item *workItem, c []float32, mv *movedBuf) {
	g := k.groups[item.g]
	lo, hi := item.lo, item.hi
	cand := mv.cand[:hi-lo]
	for p := range cand {
		cand[p] = int32(lo + p)
	}
	n := hi - lo
	sum := mv.sum[:n]
	clear(sum)
	rl := g.restLen
	n = nearQuantized(k.cq[:quantBlock], g.first, quantBlock, g.d, cand[:n], sum[:n], k.quant.a, k.quant.b)
	for j := 0; j < rl && n > 0; j += quantBlock {
		n = nearQuantized(k.cq[quantBlock+j:], g.rest[j:], rl, g.d, cand[:n], sum[:n], k.quant.a, k.quant.b)
	}
	for _, p := range cand[:n] {
		// The same sum as before the quantized test existed, so the
		// selection is the exact greedy one.
		d := g.d[p]
		id := g.ids[p]
		s := sqDist(c, k.pts.Row(int(id)), d*d)
		if !(s < d*d) {
			continue
		}
		item.farMoved = item.farMoved || id == g.far
		mv.ids = append(mv.ids, id)
		mv.first = append(mv.first, g.first[int(p)*quantBlock:(int(p)+1)*quantBlock]...)
		mv.rest = append(mv.rest, g.rest[int(p)*rl:(int(p)+1)*rl]...)
		mv.d = append(mv.d, float32(math.Sqrt(float64(s))))
		g.ids[p] = -1
		item.moves++
	}
	if item.alone && item.moves > 0 {
		g.compact(lo)
		if item.farMoved {
			g.refreshRadius()
		}
	}
	k.visited.Add(int64(hi - lo))
	k.full.Add(int64(n))
	if g.centre < 0 {
		k.initial.Add(int64(hi - lo))
	}
}

// refreshRadius finds the group's farthest member again (its last in a
// centre's group).
func (g *group) refreshRadius() {
	g.radius, g.far = -1, -1
	if g.centre >= 0 {
		if n := len(g.ids); n > 0 {
			g.radius, g.far = g.d[n-1], g.ids[n-1]
		}
		return
	}
	for i, id := range g.ids {
		if d := g.d[i]; d > g.radius || (d == g.radius && id < g.far) {
			g.radius, g.far = d, id
		}
	}
}

// compact closes the group's holes, which all lie at or after position
// from: in a centre's group by shifting the members after each hole down,
// which keeps their order (the holes lie in the candidate suffix, so only
// members there move); in the initial group, whose order does not matter,
// by moving its last members into the holes. It gives memory back once the
// group has shrunk to a quarter of its arrays.
func (g *group) compact(from int) {
	n := from
	if g.centre >= 0 {
		// Runs of members between holes move down with one copy per array.
		rl := g.restLen
		for n < len(g.ids) && g.ids[n] >= 0 {
			n++
		}
		for p := n; p < len(g.ids); {
			for p < len(g.ids) && g.ids[p] < 0 {
				p++
			}
			e := p
			for e < len(g.ids) && g.ids[e] >= 0 {
				e++
			}
			copy(g.ids[n:], g.ids[p:e])
			copy(g.d[n:], g.d[p:e])
			copy(g.first[n*quantBlock:], g.first[p*quantBlock:e*quantBlock])
			copy(g.rest[n*rl:], g.rest[p*rl:e*rl])
			n += e - p
			p = e
		}
	} else {
		n = len(g.ids)
		for p := from; ; p++ {
			for p < n && g.ids[p] >= 0 {
				p++
			}
			for n > p && g.ids[n-1] < 0 {
				n--
			}
			if p >= n {
				break
			}
			g.move(p, n-1)
			n--
		}
	}
	g.ids, g.d = g.ids[:n], g.d[:n]
	g.first, g.rest = g.first[:n*quantBlock], g.rest[:n*g.restLen]
	if n > 0 && cap(g.ids) > 4*n && cap(g.ids) > 1024 {
		g.ids = append([]int32(nil), g.ids...)
		g.d = append([]float32(nil), g.d...)
		g.first = append([]int16(nil), g.first...)
		g.rest = append([]int16(nil), g.rest...)
	}
}

// nearSuffix is where the suffix of d (non-decreasing) begins whose
// members a new centre at distance dcg from their centre may bring closer:
// those with dcg < 2·d (the triangle inequality, with pruneSlack).
func nearSuffix(d []float32, dcg float32) int {
	lo, hi := 0, len(d)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if dcg < 2*d[m]*pruneSlack {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// prefetchItem asks for the first cache lines of an item's distances and
// first blocks: items are small runs all over memory, and a scan otherwise
// waits for each one's first lines before the hardware prefetcher catches
// up with it. The addresses were taken when the items were made: by now
// another worker may be compacting the group.
func prefetchItem(it *workItem) {
	n := it.hi - it.lo
	prefetch(it.dAt, min(n*4, 64))
	prefetch(it.firstAt, min(n*quantBlock*2, 128))
}
