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
// its members' vectors and distances contiguously, so a scan streams
// through memory instead of gathering rows all over the projected matrix;
// members move between groups by copying (order within a group is free).
//
// With pre, the group also keeps each member's first prefixDim coordinates
// in a dense array. Most candidates are ruled out by those coordinates
// alone (sqDist stops there), and reading them from a dense array streams
// 64 bytes per member instead of touching one line of every 512-byte row
// out of order, which left the scan waiting on memory (114 ns per
// candidate on the benchmark's 760,480 patches).
type group struct {
	centre int32     // selection number of the centre (row of kCenter.centres), −1 for the initial group
	ids    []int32   // member point ids
	vec    []float32 // member vectors, len(ids)×dim
	d      []float32 // member distances to the centre
	pre    []float32 // member prefixes, len(ids)×prefixDim (nil without the prefix test)
	radius float32   // max of d (−1 when empty)
	far    int32     // the point id at radius
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
	vec []float32
	d   []float32
	pre []float32
	// cand and dist are the scan's scratch lists (scanChunk long).
	cand []int32
	dist []float32
}

// prefixDim is the prefix the scan tests first: sqDist's first block. One
// block (64 bytes, one cache line per member) tested on the benchmark's
// 760,480 patches faster than two: the scan waits on memory, not on
// arithmetic.
const prefixDim = 16

// kCenter is the state of the greedy k-center selection.
type kCenter struct {
	dim      int
	groups   []*group
	centres  []float32 // selected vectors, one row per selection
	chosen   []bool
	workers  int
	prune    bool
	prefix   bool // groups keep prefixes (dim > prefixDim)
	items    []workItem
	moved    []movedBuf
	dcg      []float32
	nextFill int

	// Counters for benchmarks: members visited in scanned groups, distance
	// tests (prefix or full), full-row evaluations among them, and visits
	// to the initial group.
	visited, evaluated, full, initial atomic.Int64
}

// newKCenter takes ownership of pts.RawData() (it reorders it).
func newKCenter(pts *mat.Matrix, workers int, prune bool) *kCenter {
	g := &group{centre: -1, vec: pts.RawData(), ids: make([]int32, pts.Rows()), d: make([]float32, pts.Rows()), radius: -1, far: -1}
	for i := range g.ids {
		g.ids[i] = int32(i)
	}
	dim := pts.Cols()
	prefix := dim > prefixDim
	if prefix {
		g.pre = make([]float32, pts.Rows()*prefixDim)
		for i := range g.ids {
			copy(g.pre[i*prefixDim:(i+1)*prefixDim], g.row(i, dim)[:prefixDim])
		}
	}
	moved := make([]movedBuf, workers)
	for w := range moved {
		moved[w].cand = make([]int32, scanChunk)
		moved[w].dist = make([]float32, scanChunk)
	}
	return &kCenter{
		dim: dim, groups: []*group{g}, chosen: make([]bool, pts.Rows()),
		workers: workers, prune: prune, prefix: prefix, moved: moved,
	}
}

func (g *group) row(i, dim int) []float32 { return g.vec[i*dim : (i+1)*dim : (i+1)*dim] }

// prefixOf is member i's prefix.
func (g *group) prefixOf(i int) []float32 {
	return g.pre[i*prefixDim : (i+1)*prefixDim : (i+1)*prefixDim]
}

// move copies member src over member dst (ids, distance, vector, prefix).
func (g *group) move(dst, src, dim int) {
	g.ids[dst], g.d[dst] = g.ids[src], g.d[src]
	copy(g.row(dst, dim), g.row(src, dim))
	if g.pre != nil {
		copy(g.prefixOf(dst), g.prefixOf(src))
	}
}

// init sets every distance to the mean distance to the start points
// (PatchCore's approximate anchor distances).
func (k *kCenter) init(ctx context.Context, starts []int) error {
	g := k.groups[0]
	sv := make([][]float32, len(starts))
	for j, s := range starts {
		sv[j] = append([]float32(nil), g.row(s, k.dim)...)
	}
	inf := float32(math.Inf(1))
	err := parallelFor(ctx, len(g.ids), k.workers, 1024, func(lo, hi, _ int) {
		for i := lo; i < hi; i++ {
			x := g.row(i, k.dim)
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
	for i, id := range best.ids {
		if id == sel {
			k.centres = append(k.centres, best.row(i, k.dim)...)
			break
		}
	}
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
	dim := k.dim
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
		m.ids, m.vec, m.d, m.pre = m.ids[:0], m.vec[:0], m.d[:0], m.pre[:0]
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
	ng.vec = make([]float32, 0, size*dim)
	ng.d = make([]float32, 0, size)
	if k.prefix {
		ng.pre = make([]float32, 0, size*prefixDim)
	}
	for _, m := range k.moved {
		ng.ids = append(ng.ids, m.ids...)
		ng.vec = append(ng.vec, m.vec...)
		ng.d = append(ng.d, m.d...)
		ng.pre = append(ng.pre, m.pre...)
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
// triangle inequality does not exclude are listed ([nearMembers]), their
// prefix distances computed in one call ([firstBlocks]), and those still
// closer than their distance tested in full; then the moves are made,
// highest position first, each filling its hole with the item's last
// member. The item records whether the group's farthest member moved:
// only then must the group's radius be found again (see compact).
func (k *kCenter) scan(item *workItem, c []float32, mv *movedBuf) {
	dim := k.dim
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
	cand = cand[:n]
	full, moves := 0, 0
	dist := mv.dist[:n]
	if k.prefix {
		firstBlocks(c, g.pre, cand, dist)
	}
	for i, p := range cand {
		d := g.d[p]
		from, s := 0, float32(0)
		if k.prefix {
			// The prefix test is sqDist's own first steps, so it rules
			// out exactly the points sqDist would stop at.
			if s = dist[i]; s >= d*d {
				continue
			}
			from = prefixDim
		}
		full++
		if s = sqDistFrom(c, g.row(int(p), dim), from, s, d*d); s < d*d {
			// i ≥ moves: the lists' earlier entries are free.
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
		mv.vec = append(mv.vec, g.row(p, dim)...)
		mv.d = append(mv.d, dist[i])
		if k.prefix {
			mv.pre = append(mv.pre, g.prefixOf(p)...)
		}
		end--
		if p != end {
			g.move(p, end, dim)
		}
	}
	item.kept = end - lo
	k.visited.Add(int64(hi - lo))
	k.evaluated.Add(int64(n))
	k.full.Add(int64(full))
	if g.centre < 0 {
		k.initial.Add(int64(hi - lo))
	}
}

// compact makes a scanned group's kept members contiguous again: the
// items' kept members are [lo, lo+kept) and the holes [lo+kept, hi); holes
// below the new length are filled with kept members from above it, so only
// as many members move as there were moves.
func (k *kCenter) compact(g *group, items []workItem) {
	dim := k.dim
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
			g.move(h, s, dim)
		}
	}
	g.ids, g.d, g.vec = g.ids[:n], g.d[:n], g.vec[:n*dim]
	if g.pre != nil {
		g.pre = g.pre[:n*prefixDim]
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
		if g.pre != nil {
			g.pre = append([]float32(nil), g.pre...)
		}
		g.vec = append([]float32(nil), g.vec...)
	}
}
