package mapper_test

import (
	"context"
	"github.com/dmad/workstation/core/ort/orttest"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/mapper"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
)

func openRT(t testing.TB) *ort.Runtime {
	t.Helper()
	return orttest.Open(t, 1)
}

type batch struct {
	q, kn, ka *mat.Matrix
	dn, da    []float32
}

func randBatch(rng *rand.Rand, n, c int) batch {
	b := batch{q: mat.New(n, c), kn: mat.New(n, c), ka: mat.New(n, c), dn: make([]float32, n), da: make([]float32, n)}
	for i := range n {
		var sn, sa float64
		for j := range c {
			b.q.Row(i)[j] = float32(rng.NormFloat64() + 1)
			x, y := 0.3*rng.NormFloat64(), 2*rng.NormFloat64()
			b.kn.Row(i)[j], b.ka.Row(i)[j] = float32(x), float32(y)
			sn += x * x
			sa += y * y
		}
		b.dn[i], b.da[i] = float32(math.Sqrt(sn)), float32(math.Sqrt(sa))
	}
	return b
}

// randomize perturbs every tensor so that no special structure (identity P,
// zero biases, unit running variance) hides a wiring mistake.
func randomize(m *mapper.Model, rng *rand.Rand) {
	for _, p := range m.Params() {
		for i := range p.Data {
			p.Data[i] += float32(0.1 * rng.NormFloat64())
		}
	}
	for i := range m.RunMean {
		m.RunMean[i] = float32(rng.NormFloat64())
		m.RunVar[i] = float32(0.5 + rng.Float64())
	}
}

// reference computes −Ψ(o) in float64, straight from the definition.
func reference(m *mapper.Model, b batch) []float64 {
	cfg := m.Config
	c, d, h := cfg.C, cfg.InDim(), cfg.Hidden
	s := m.Std
	out := make([]float64, b.q.Rows())
	for i := range out {
		o := make([]float64, 0, d)
		proj := func(x []float64) {
			for k := range c {
				v := float64(m.PBias[k])
				for j := range c {
					v += x[j] * float64(m.P.RawData()[j*c+k])
				}
				o = append(o, v)
			}
		}
		x := make([]float64, c)
		for j := range c {
			x[j] = (float64(b.q.Row(i)[j]) - float64(s.QMean[j])) * float64(s.QScale)
		}
		proj(x)
		for _, r := range []*mat.Matrix{b.kn, b.ka} {
			for j := range c {
				x[j] = float64(r.Row(i)[j]) * float64(s.KScale)
			}
			proj(x)
		}
		if cfg.Distances {
			o = append(o, (float64(b.dn[i])-float64(s.DMean))*float64(s.DScale),
				(float64(b.da[i])-float64(s.DMean))*float64(s.DScale))
		}
		var psi float64
		for u := range h {
			z := float64(m.B1[u])
			for j := range d {
				z += o[j] * float64(m.W1.RawData()[j*h+u])
			}
			z = (z-float64(m.RunMean[u]))/math.Sqrt(float64(m.RunVar[u])+float64(cfg.BNEps))*float64(m.Gamma[u]) + float64(m.Beta[u])
			if z < 0 {
				z *= float64(cfg.Slope)
			}
			psi += z * float64(m.W2[u])
		}
		out[i] = -psi
	}
	return out
}

func TestScorerMatchesReference(t *testing.T) {
	rt := openRT(t)
	for _, tc := range []struct {
		name string
		cfg  mapper.Config
		n    int
	}{
		{"distances", mapper.Config{C: 6, Hidden: 16, Distances: true, Slope: 0.2, BNEps: 1e-5, BNMomentum: 0.1, ProjIdentity: true, PatchCoreInit: true}, 37},
		{"no_distances_torch_init", mapper.Config{C: 5, Hidden: 12, Slope: 0.2, BNEps: 1e-5, BNMomentum: 0.1}, 20},
		{"several_batches", mapper.Config{C: 3, Hidden: 8, Distances: true, Slope: 0.1, BNEps: 1e-3, BNMomentum: 0.1}, mapper.ScoreBatch + 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			m, err := mapper.Init(tc.cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			b := randBatch(rng, tc.n, tc.cfg.C)
			if m.Std, err = mapper.FitStandardization(b.q, b.kn, b.dn); err != nil {
				t.Fatal(err)
			}
			randomize(m, rng)
			s, err := mapper.NewScorer(rt, m)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			dn, da := b.dn, b.da
			if !tc.cfg.Distances {
				dn, da = nil, nil
			}
			got, err := s.Score(context.Background(), b.q, b.kn, b.ka, dn, da)
			if err != nil {
				t.Fatal(err)
			}
			want := reference(m, b)
			if len(got) != len(want) {
				t.Fatalf("%d scores, want %d", len(got), len(want))
			}
			for i := range want {
				if d := math.Abs(float64(got[i]) - want[i]); d > 1e-4*(1+math.Abs(want[i])) {
					t.Fatalf("score[%d] = %v, reference %v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestPatchCoreInitScoresByDistance(t *testing.T) {
	rt := openRT(t)
	rng := rand.New(rand.NewPCG(5, 6))
	cfg := mapper.DefaultConfig(8)
	cfg.Hidden = 64
	m, err := mapper.Init(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := randBatch(rng, 400, cfg.C)
	if m.Std, err = mapper.FitStandardization(b.q, b.kn, b.dn); err != nil {
		t.Fatal(err)
	}
	s, err := mapper.NewScorer(rt, m)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Score(context.Background(), b.q, b.kn, b.ka, b.dn, b.da)
	if err != nil {
		t.Fatal(err)
	}
	// Untrained running statistics (mean 0, variance 1): the score is the
	// standardised distance plus a small random part.
	var sxy, sxx, syy, mx, my float64
	for i := range got {
		mx += float64(b.dn[i])
		my += float64(got[i])
	}
	mx /= float64(len(got))
	my /= float64(len(got))
	for i := range got {
		x, y := float64(b.dn[i])-mx, float64(got[i])-my
		sxy += x * y
		sxx += x * x
		syy += y * y
	}
	if r := sxy / math.Sqrt(sxx*syy); r < 0.9 {
		t.Fatalf("correlation of initial score with ‖k·n‖ = %.3f, want ≥ 0.9", r)
	}
}

func TestModelBytesRoundTrip(t *testing.T) {
	rt := openRT(t)
	rng := rand.New(rand.NewPCG(7, 8))
	cfg := mapper.DefaultConfig(4)
	cfg.Hidden = 10
	m, err := mapper.Init(cfg, 9)
	if err != nil {
		t.Fatal(err)
	}
	b := randBatch(rng, 50, cfg.C)
	m.Std, _ = mapper.FitStandardization(b.q, b.kn, b.dn)
	randomize(m, rng)
	m.Backbone = "mobilenet_v2_imagenet"
	m.BankIDs = []string{"normal:abc", "anomaly:def"}
	data, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back mapper.Model
	if err := back.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if back.Backbone != m.Backbone || strings.Join(back.BankIDs, ",") != strings.Join(m.BankIDs, ",") || back.Config != m.Config {
		t.Fatalf("metadata/config lost: %+v %v %+v", back.Backbone, back.BankIDs, back.Config)
	}
	score := func(m *mapper.Model) []float32 {
		s, err := mapper.NewScorer(rt, m)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		out, err := s.Score(context.Background(), b.q, b.kn, b.ka, b.dn, b.da)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, c := score(m), score(&back)
	for i := range a {
		if a[i] != c[i] {
			t.Fatalf("score[%d] %v after round trip, %v before", i, c[i], a[i])
		}
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"flipped byte", func() []byte { d := append([]byte(nil), data...); d[len(d)/2] ^= 1; return d }()},
		{"truncated", data[:len(data)-9]},
		{"empty", nil},
		{"not a model", []byte("hello, this is not a model at all")},
	} {
		var x mapper.Model
		if err := x.UnmarshalBinary(tc.data); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestScoreErrors(t *testing.T) {
	rt := openRT(t)
	cfg := mapper.DefaultConfig(4)
	cfg.Hidden = 4
	m, _ := mapper.Init(cfg, 1)
	s, err := mapper.NewScorer(rt, m)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := mat.New(3, 4)
	if _, err := s.Score(context.Background(), q, mat.New(3, 4), mat.New(2, 4), make([]float32, 3), make([]float32, 3)); err == nil {
		t.Error("mismatched k·a accepted")
	}
	if _, err := s.Score(context.Background(), q, mat.New(3, 4), mat.New(3, 4), nil, nil); err == nil {
		t.Error("missing distances accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Score(ctx, q, mat.New(3, 4), mat.New(3, 4), make([]float32, 3), make([]float32, 3)); err != context.Canceled {
		t.Errorf("cancelled context: %v", err)
	}
	if _, err := mapper.Init(mapper.Config{C: 0, Hidden: 3, BNEps: 1e-5}, 1); err == nil {
		t.Error("C = 0 accepted")
	}
}
