package train

import (
	"context"
	"fmt"
	"github.com/dmad/workstation/core/ort/orttest"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dmad/workstation/core/mapper"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
)

func openRT(t testing.TB, threads int) *ort.Runtime {
	t.Helper()
	return orttest.Open(t, threads)
}

// stepFixture is a step graph with random model, moments and batch.
type stepFixture struct {
	m      *mapper.Model
	io     stepIO
	sess   *ort.Session
	in     []ort.Tensor
	bn, bs int
}

func randMatrix(rng *rand.Rand, r, c int, scale, shift float64) *mat.Matrix {
	m := mat.New(r, c)
	for i := range m.RawData() {
		m.RawData()[i] = float32(shift + scale*rng.NormFloat64())
	}
	return m
}

func norms(m *mat.Matrix) []float32 {
	out := make([]float32, m.Rows())
	for i := range out {
		var s float64
		for _, v := range m.Row(i) {
			s += float64(v) * float64(v)
		}
		out[i] = float32(math.Sqrt(s))
	}
	return out
}

func randPatches(rng *rand.Rand, n, c int, resid float64) Patches {
	p := Patches{Q: randMatrix(rng, n, c, 1, 0.5), KN: randMatrix(rng, n, c, resid, 0), KA: randMatrix(rng, n, c, 2*resid, 0)}
	p.DN, p.DA = norms(p.KN), norms(p.KA)
	return p
}

func newFixture(t *testing.T, rt *ort.Runtime, mc mapper.Config, cfg Config, bn, bs int, seed uint64) *stepFixture {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	m, err := mapper.Init(mc, seed)
	if err != nil {
		t.Fatal(err)
	}
	normal := randPatches(rng, bn, mc.C, 0.5)
	if m.Std, err = mapper.FitStandardization(normal.Q, normal.KN, normal.DN); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() {
		for i := range p.Data {
			p.Data[i] += float32(0.2 * rng.NormFloat64())
		}
	}
	g, io := buildStep(m, cfg, bn, bs, true)
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := rt.NewSession(model, io.inputs, io.outputs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	f := &stepFixture{m: m, io: io, sess: sess, bn: bn, bs: bs}
	ps := m.Params()
	state := make([][3][]float32, len(ps))
	for k, p := range ps {
		mom := make([]float32, len(p.Data))
		v := make([]float32, len(p.Data))
		for i := range mom {
			mom[i] = float32(0.01 * rng.NormFloat64())
			v[i] = float32(1e-4 * rng.Float64())
		}
		state[k] = [3][]float32{p.Data, mom, v}
	}
	feed := stepFeed{}
	feed.putParams(ps, state)
	feed.putSchedule(schedule{lr: 0.01, lrProj: 0.005, bc1: 0.19, bc2: 0.002})
	data := Data{Normal: normal}
	if bs > 0 {
		data.Seen = randPatches(rng, bs, mc.C, 2)
	}
	bat := newBatcher(data, m.Config, bn, bs, cfg.NoiseStd/m.Std.KScale, rng)
	bat.next(0, feed)
	in, err := io.order(feed)
	if err != nil {
		t.Fatal(err)
	}
	f.in = in
	return f
}

func (f *stepFixture) run(t *testing.T) []ort.Tensor {
	t.Helper()
	res, err := f.sess.Run(f.in...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// kinkFree reports whether every hinge argument is at least d from its kink.
func (f *stepFixture) kinkFree(res []ort.Tensor, margin float32, d float64) bool {
	psi := res[f.io.psi].F32
	for i, v := range psi {
		arg := float64(margin - v)
		if i >= f.bn {
			arg = float64(margin + v)
		}
		if math.Abs(arg) < d {
			return false
		}
	}
	for _, v := range res[f.io.hidden].F32 { // LeakyReLU inputs
		if math.Abs(float64(v)) < d {
			return false
		}
	}
	return true
}

func smallConfig(c, h int, distances bool) (mapper.Config, Config) {
	mc := mapper.DefaultConfig(c)
	mc.Hidden = h
	mc.Distances = distances
	cfg := DefaultConfig(c)
	cfg.Mapper = mc
	cfg.Margin = 0.5
	cfg.Lambda1, cfg.Lambda2 = 1.5, 3
	cfg.NoiseStd = 1
	return mc, cfg
}

// TestStepLossGradient checks the gradient of the whole loss (projection,
// pseudo-negatives with recomputed distances, BatchNorm in training mode,
// LeakyReLU, three hinge terms) against central differences.
func TestStepLossGradient(t *testing.T) {
	rt := openRT(t, 1)
	for _, tc := range []struct {
		name      string
		distances bool
		bs        int
	}{
		{"semi_distances", true, 3},
		{"unsup_distances", true, 0},
		{"semi_plain", false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc, cfg := smallConfig(3, 6, tc.distances)
			mc.PatchCoreInit = false
			cfg.Mapper = mc
			var f *stepFixture
			var res []ort.Tensor
			for seed := uint64(1); ; seed++ {
				if seed > 200 {
					t.Fatal("no fixture with every hinge away from its kink")
				}
				f = newFixture(t, rt, mc, cfg, 5, tc.bs, seed)
				res = f.run(t)
				if f.kinkFree(res, cfg.Margin, 0.05) {
					break
				}
			}
			const h = 1e-3
			for i, p := range f.m.Params() {
				x := f.in[3*i].F32
				an := res[f.io.grads[i]].F32
				for j := range x {
					orig := x[j]
					x[j] = orig + h
					lp := float64(f.run(t)[f.io.loss].F32[0])
					x[j] = orig - h
					lm := float64(f.run(t)[f.io.loss].F32[0])
					x[j] = orig
					fd := (lp - lm) / (2 * h)
					if d := math.Abs(fd - float64(an[j])); d > 2e-3+2e-2*math.Abs(fd) {
						t.Errorf("dL/d%s[%d]: autodiff %.6g, central difference %.6g", p.Name, j, an[j], fd)
					}
				}
			}
		})
	}
}

// TestStepAdam checks the in-graph Adam (Ψ, L2 decay) and AdamW (P,
// decoupled decay) updates against a Go implementation fed the graph's own
// gradients.
func TestStepAdam(t *testing.T) {
	rt := openRT(t, 1)
	mc, cfg := smallConfig(4, 8, true)
	cfg.WeightDecay, cfg.WeightDecayProj = 0.05, 0.1
	f := newFixture(t, rt, mc, cfg, 6, 2, 3)
	res := f.run(t)
	lr, lrP, bc1, bc2 := 0.01, 0.005, 0.19, 0.002
	for i, p := range f.m.Params() {
		pv, mv, vv := f.in[3*i].F32, f.in[3*i+1].F32, f.in[3*i+2].F32
		g := res[f.io.grads[i]].F32
		for j := range pv {
			gj, rate, wd := float64(g[j]), lr, float64(cfg.WeightDecay)
			if p.Proj {
				rate, wd = lrP, float64(cfg.WeightDecayProj)
			} else {
				gj += wd * float64(pv[j])
			}
			m2 := adamBeta1*float64(mv[j]) + (1-adamBeta1)*gj
			v2 := adamBeta2*float64(vv[j]) + (1-adamBeta2)*gj*gj
			base := float64(pv[j])
			if p.Proj {
				base *= 1 - rate*wd
			}
			want := base - rate*(m2/bc1)/(math.Sqrt(v2/bc2)+adamEps)
			for _, c := range []struct {
				name      string
				got, want float64
			}{{"param", float64(res[f.io.newParam[i]].F32[j]), want}, {"m", float64(res[f.io.newM[i]].F32[j]), m2}, {"v", float64(res[f.io.newV[i]].F32[j]), v2}} {
				if math.Abs(c.got-c.want) > 1e-5*(1+math.Abs(c.want)) {
					t.Fatalf("%s %s[%d] = %v, want %v", c.name, p.Name, j, c.got, c.want)
				}
			}
		}
	}
}

// TestStepForwardMatchesScorer: with BatchNorm's running statistics set to
// a step's batch statistics, the inference graph must reproduce the
// training graph's Ψ for the normal rows, the pseudo-negatives (scored as
// the perturbed features q+ε, k·n+ε, k·a+ε with their own distances) and
// the seen anomalies.
func TestStepForwardMatchesScorer(t *testing.T) {
	rt := openRT(t, 1)
	for _, distances := range []bool{true, false} {
		t.Run(fmt.Sprintf("distances=%v", distances), func(t *testing.T) {
			mc, cfg := smallConfig(5, 12, distances)
			bn, bs := 9, 4
			f := newFixture(t, rt, mc, cfg, bn, bs, 11)
			res := f.run(t)
			m := f.m.Clone()
			copy(m.RunMean, res[f.io.bnMean].F32)
			copy(m.RunVar, res[f.io.bnVar].F32)
			sc, err := mapper.NewScorer(rt, m)
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			// Locate the batch inputs after parameters, moments and scalars.
			base := 3*len(m.Params()) + 4
			get := func(k int, rows int) *mat.Matrix {
				x, _ := mat.FromData(rows, mc.C, append([]float32(nil), f.in[base+k].F32...))
				return x
			}
			q, kn, ka := get(0, bn), get(1, bn), get(2, bn)
			var dn, da []float32
			k := 3
			if distances {
				dn, da = f.in[base+3].F32, f.in[base+4].F32
				k = 5
			}
			eps := f.in[base+k].F32
			qp, knp, kap := q.Clone(), kn.Clone(), ka.Clone()
			for i := range eps {
				qp.RawData()[i] += eps[i]
				knp.RawData()[i] += eps[i]
				kap.RawData()[i] += eps[i]
			}
			var dnp, dap []float32
			if distances {
				dnp, dap = norms(knp), norms(kap)
			}
			qa, kna, kaa := get(k+1, bs), get(k+2, bs), get(k+3, bs)
			var dna, daa []float32
			if distances {
				dna, daa = f.in[base+k+4].F32, f.in[base+k+5].F32
			}
			var scores []float32
			for _, part := range []struct {
				q, kn, ka *mat.Matrix
				dn, da    []float32
			}{{q, kn, ka, dn, da}, {qp, knp, kap, dnp, dap}, {qa, kna, kaa, dna, daa}} {
				s, err := sc.Score(context.Background(), part.q, part.kn, part.ka, part.dn, part.da)
				if err != nil {
					t.Fatal(err)
				}
				scores = append(scores, s...)
			}
			psi := res[f.io.psi].F32
			if len(psi) != len(scores) {
				t.Fatalf("%d Ψ values, %d scores", len(psi), len(scores))
			}
			for i := range psi {
				if d := math.Abs(float64(psi[i] + scores[i])); d > 1e-4*(1+math.Abs(float64(psi[i]))) {
					t.Errorf("row %d: training Ψ %v, inference −S %v", i, psi[i], -scores[i])
				}
			}
		})
	}
}

// TestStepFeedOrder: the feed is laid out in the graph's input order, and a
// missing or extra input is an error instead of a silent shift.
func TestStepFeedOrder(t *testing.T) {
	io := stepIO{inputs: []string{"lr", "eps", "qn"}}
	a, b, c := ort.F32Tensor([]float32{1}, 1), ort.F32Tensor([]float32{2}, 1), ort.F32Tensor([]float32{3}, 1)
	in, err := io.order(stepFeed{"qn": c, "lr": a, "eps": b})
	if err != nil || len(in) != 3 || in[0].F32[0] != 1 || in[1].F32[0] != 2 || in[2].F32[0] != 3 {
		t.Fatalf("order: %v %v", in, err)
	}
	if _, err := io.order(stepFeed{"qn": c, "lr": a}); err == nil {
		t.Error("a missing input was accepted")
	}
	if _, err := io.order(stepFeed{"qn": c, "lr": a, "eps": b, "qa": c}); err == nil {
		t.Error("an extra input was accepted")
	}
	if _, err := io.order(stepFeed{"qn": c, "lr": a, "epsilon": b}); err == nil {
		t.Error("a misnamed input was accepted")
	}
}
