package train_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/dmad/workstation/core/ort/orttest"
	"log/slog"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/mapper"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/train"
)

func openRT(t testing.TB, threads int) *ort.Runtime {
	t.Helper()
	return orttest.Open(t, threads)
}

// auroc is the Mann–Whitney estimate of P(score anomalous > score normal),
// ties counting one half.
func auroc(scores []float32, anomalous []bool) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var rankSum, nPos float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		r := float64(i+j+1) / 2 // mean 1-based rank of the tie group
		for k := i; k < j; k++ {
			if anomalous[idx[k]] {
				rankSum += r
				nPos++
			}
		}
		i = j
	}
	nNeg := float64(len(scores)) - nPos
	return (rankSum - nPos*(nPos+1)/2) / (nPos * nNeg)
}

func TestAUROCHelper(t *testing.T) {
	for _, c := range []struct {
		s    []float32
		a    []bool
		want float64
	}{
		{[]float32{0, 1}, []bool{false, true}, 1},
		{[]float32{1, 0}, []bool{false, true}, 0},
		{[]float32{1, 1}, []bool{false, true}, 0.5},
		{[]float32{0, 2, 1, 3}, []bool{false, false, true, true}, 0.75},
	} {
		if got := auroc(c.s, c.a); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("auroc(%v, %v) = %v, want %v", c.s, c.a, got, c.want)
		}
	}
}

// world is a synthetic feature space: a normal Gaussian cloud, a normal
// bank drawn from it and an anomaly bank (pseudo-anomalies: bank points
// plus noise, and the seen anomalies when there are any).
type world struct {
	c            int
	bankN, bankA *mat.Matrix
	dirs         [][]float64 // anomaly shift directions (unit)
	shift        float64
}

func (w *world) sample(rng *rand.Rand, n int, dir int) *mat.Matrix {
	m := mat.New(n, w.c)
	for i := range n {
		for j := range w.c {
			v := rng.NormFloat64()
			if dir >= 0 {
				v += w.shift * w.dirs[dir][j]
			}
			m.Row(i)[j] = float32(v)
		}
	}
	return m
}

// knowledge finds nearest neighbours in both banks (exact, in Go).
func (w *world) knowledge(q *mat.Matrix) train.Patches {
	p := train.Patches{Q: q, KN: mat.New(q.Rows(), w.c), KA: mat.New(q.Rows(), w.c), DN: make([]float32, q.Rows()), DA: make([]float32, q.Rows())}
	nn := func(bank *mat.Matrix, x []float32, res []float32) float32 {
		best, bi := math.Inf(1), 0
		for r := range bank.Rows() {
			var d float64
			for j, v := range bank.Row(r) {
				e := float64(x[j] - v)
				d += e * e
			}
			if d < best {
				best, bi = d, r
			}
		}
		for j, v := range bank.Row(bi) {
			res[j] = x[j] - v
		}
		return float32(math.Sqrt(best))
	}
	for i := range q.Rows() {
		p.DN[i] = nn(w.bankN, q.Row(i), p.KN.Row(i))
		p.DA[i] = nn(w.bankA, q.Row(i), p.KA.Row(i))
	}
	return p
}

func newWorld(rng *rand.Rand, c int, seen *mat.Matrix) *world {
	w := &world{c: c, shift: 8}
	for range 3 {
		d := make([]float64, c)
		var s float64
		for j := range d {
			d[j] = rng.NormFloat64()
			s += d[j] * d[j]
		}
		for j := range d {
			d[j] /= math.Sqrt(s)
		}
		w.dirs = append(w.dirs, d)
	}
	w.bankN = w.sample(rng, 300, -1)
	pseudo := w.sample(rng, 100, -1)
	for i := range pseudo.RawData() {
		pseudo.RawData()[i] += float32(rng.NormFloat64())
	}
	w.bankA = pseudo
	return w
}

type problem struct {
	data      train.Data
	test      train.Patches
	anomalous []bool
}

func makeProblem(seed uint64, c int, semi bool) problem {
	rng := rand.New(rand.NewPCG(seed, 1))
	w := newWorld(rng, c, nil)
	var seenQ *mat.Matrix
	if semi {
		seenQ = w.sample(rng, 150, 0) // seen anomalies lie along direction 0 only
		w.bankA, _ = mat.Append(w.bankA, seenQ)
	}
	p := problem{data: train.Data{Normal: w.knowledge(w.sample(rng, 3000, -1))}}
	if semi {
		p.data.Seen = w.knowledge(seenQ)
	}
	// Test: normal patches and anomalies along all three directions (two
	// of them never seen).
	parts := []*mat.Matrix{w.sample(rng, 600, -1)}
	p.anomalous = make([]bool, 600)
	for d := range 3 {
		parts = append(parts, w.sample(rng, 200, d))
		for range 200 {
			p.anomalous = append(p.anomalous, true)
		}
	}
	q, _ := mat.Append(parts...)
	p.test = w.knowledge(q)
	return p
}

func smallConfig(c int, distances bool) train.Config {
	cfg := train.DefaultConfig(c)
	cfg.Mapper.Hidden = 64
	cfg.Mapper.Distances = distances
	cfg.Epochs = 60
	cfg.BatchSize = 256
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.LR, cfg.LRProj = 2e-3, 1e-3
	return cfg
}

func score(t *testing.T, rt *ort.Runtime, m *mapper.Model, p train.Patches) []float32 {
	t.Helper()
	s, err := mapper.NewScorer(rt, m)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Score(context.Background(), p.Q, p.KN, p.KA, p.DN, p.DA)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTrainSeparates: on a Gaussian cloud against shifted anomalies the
// hinge loss falls and the trained mapper separates held-out anomalies
// (including directions never seen), unsupervised and semi-supervised,
// with and without the distance inputs.
func TestTrainSeparates(t *testing.T) {
	rt := openRT(t, 2)
	for _, tc := range []struct {
		name            string
		semi, distances bool
	}{
		{"unsupervised_plain", false, false},
		{"unsupervised_distances", false, true},
		{"semi_plain", true, false},
		{"semi_distances", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const c = 8
			p := makeProblem(3, c, tc.semi)
			cfg := smallConfig(c, tc.distances)
			m, lg, err := train.Train(context.Background(), rt, p.data, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			first, last := lg.Epochs[0], lg.Epochs[len(lg.Epochs)-1]
			t.Logf("loss %.3f → %.3f; normal above m %.2f → %.2f; pseudo below −m %.2f → %.2f; seen below −m %.2f → %.2f",
				first.Loss, last.Loss, first.NormalAbove, last.NormalAbove, first.NegBelow, last.NegBelow, first.AnomBelow, last.AnomBelow)
			if !(last.Loss < 0.75*first.Loss) {
				t.Errorf("loss did not fall enough: %.4f → %.4f", first.Loss, last.Loss)
			}
			a := auroc(score(t, rt, m, p.test), p.anomalous)
			t.Logf("held-out AUROC %.4f (PatchCore ‖k·n‖ %.4f)", a, auroc(p.test.DN, p.anomalous))
			if a < 0.99 {
				t.Errorf("AUROC %.4f < 0.99", a)
			}
		})
	}
}

func TestTrainDeterministic(t *testing.T) {
	rt := openRT(t, 1)
	p := makeProblem(5, 6, true)
	cfg := smallConfig(6, true)
	cfg.Epochs = 2
	run := func(seed uint64) []byte {
		cfg.Seed = seed
		m, _, err := train.Train(context.Background(), rt, p.data, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := run(1), run(1), run(2)
	if !bytes.Equal(a, b) {
		t.Error("two runs with the same seed differ")
	}
	if bytes.Equal(a, c) {
		t.Error("runs with different seeds are identical")
	}
}

func TestTrainCancel(t *testing.T) {
	rt := openRT(t, 1)
	p := makeProblem(6, 6, false)
	cfg := smallConfig(6, true)
	cfg.Epochs = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var after int
	cancelled := false
	_, _, err := train.Train(ctx, rt, p.data, cfg, func(e progress.Event) {
		if cancelled {
			after++
		}
		if e.Done == 3 {
			cancel()
			cancelled = true
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Train after cancel: %v, want context.Canceled", err)
	}
	if after != 0 {
		t.Errorf("%d steps ran after cancellation", after)
	}
}

func TestTrainRejectsBadData(t *testing.T) {
	rt := openRT(t, 1)
	p := makeProblem(7, 4, true)
	cfg := smallConfig(4, true)
	cfg.Epochs = 1
	for _, tc := range []struct {
		name string
		mod  func(d *train.Data, c *train.Config)
	}{
		{"wrong C", func(d *train.Data, c *train.Config) { c.Mapper.C = 5 }},
		{"missing distances", func(d *train.Data, c *train.Config) { d.Normal.DN = nil }},
		{"seen rows mismatch", func(d *train.Data, c *train.Config) { d.Seen.KA = d.Seen.KA.Slice(0, 3) }},
		{"no normal patches", func(d *train.Data, c *train.Config) { d.Normal = train.Patches{} }},
		{"zero epochs", func(d *train.Data, c *train.Config) { c.Epochs = 0 }},
	} {
		d, c := p.data, cfg
		tc.mod(&d, &c)
		if _, _, err := train.Train(context.Background(), rt, d, c, nil); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// TestTrainContinues: training can start from an existing model (new seen
// anomalies arriving on a running line) and keeps its standardisation.
func TestTrainContinues(t *testing.T) {
	rt := openRT(t, 1)
	p := makeProblem(8, 6, true)
	cfg := smallConfig(6, true)
	cfg.Epochs = 1
	m, _, err := train.Train(context.Background(), rt, p.data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := m.MarshalBinary()
	cfg.Start = m
	m2, _, err := train.Train(context.Background(), rt, p.data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := m.MarshalBinary()
	if !bytes.Equal(before, after) {
		t.Error("Start model was modified")
	}
	if m2.Std.KScale != m.Std.KScale || m2.Std.DMean != m.Std.DMean {
		t.Error("standardisation not kept")
	}
	if m2.W1.RawData()[5] == m.W1.RawData()[5] && m2.W2[3] == m.W2[3] {
		t.Error("continued training changed nothing")
	}
}

// TestTrainCheckpoints: a Checkpoint rates the model every CheckpointEvery
// epochs and after the last; Train returns the best-rated one, exactly as
// it stood at that epoch, and an error from the rating stops training.
func TestTrainCheckpoints(t *testing.T) {
	rt := openRT(t, 1)
	p := makeProblem(7, 6, false)
	cfg := smallConfig(6, true)
	cfg.Epochs, cfg.FirstCheckpoint, cfg.CheckpointEvery = 5, 2, 2
	rating := map[int]float64{2: 0.5, 4: 0.9, 5: 0.7}
	seen := map[int][]byte{}
	cfg.Checkpoint = func(_ context.Context, epoch int, m *mapper.Model) (float64, error) {
		b, err := m.MarshalBinary()
		if err != nil {
			return 0, err
		}
		seen[epoch] = b
		return rating[epoch], nil
	}
	m, lg, err := train.Train(context.Background(), rt, p.data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 || seen[2] == nil || seen[4] == nil || seen[5] == nil {
		t.Fatalf("checkpoints at %v, want 2, 4, 5", lg.Ratings)
	}
	if lg.BestEpoch != 4 || lg.Ratings[4] != 0.9 {
		t.Fatalf("best epoch %d, ratings %v", lg.BestEpoch, lg.Ratings)
	}
	got, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, seen[4]) || bytes.Equal(got, seen[5]) {
		t.Fatal("returned model is not the epoch-4 checkpoint")
	}
	// Without a Checkpoint the last epoch's model comes back.
	cfg.Checkpoint = nil
	last, lg2, err := train.Train(context.Background(), rt, p.data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := last.MarshalBinary(); !bytes.Equal(b, seen[5]) || lg2.BestEpoch != 5 {
		t.Fatalf("without checkpoints: not the last epoch's model (best epoch %d)", lg2.BestEpoch)
	}
	cfg.Checkpoint = func(context.Context, int, *mapper.Model) (float64, error) { return 0, errors.New("rating broke") }
	if _, _, err := train.Train(context.Background(), rt, p.data, cfg, nil); err == nil || !strings.Contains(err.Error(), "rating broke") {
		t.Fatalf("rating error gave %v", err)
	}
}

// TestTrainPatience: with Patience, training stops once that many
// checkpoints in a row fail to better the best rating by MinImprovement,
// and the model returned is bit-identical to the one a full run returns
// (the learning-rate schedule spans all epochs either way).
func TestTrainPatience(t *testing.T) {
	rt := openRT(t, 1)
	p := makeProblem(7, 6, false)
	tests := []struct {
		name      string
		patience  int
		minGain   float64
		ratings   map[int]float64 // by epoch; checkpoints every 2 of 8 epochs
		stopped   int
		bestEpoch int
		first     int // FirstCheckpoint
	}{
		{"no patience trains all", 0, 0, map[int]float64{2: 0.9, 4: 0.8, 6: 0.8, 8: 0.8}, 8, 2, 0},
		{"stops after one stale checkpoint", 1, 0, map[int]float64{2: 0.5, 4: 0.9, 6: 0.8, 8: 0.95}, 6, 4, 0},
		{"gain below the tolerance is a tie", 1, 0.01, map[int]float64{2: 0.9, 4: 0.905, 6: 1, 8: 1}, 4, 2, 0},
		{"any increase counts when negative", 1, -1, map[int]float64{2: 0.9, 4: 0.905, 6: 0.9, 8: 1}, 6, 4, 0},
		{"two stale in a row", 2, 0, map[int]float64{2: 0.5, 4: 0.4, 6: 0.6, 8: 0.6}, 8, 6, 0},
		{"improving keeps going", 1, 0, map[int]float64{2: 0.1, 4: 0.2, 6: 0.3, 8: 0.4}, 8, 8, 0},
		{"first checkpoint later", 1, 0, map[int]float64{2: 1, 3: 0.5, 5: 0.9, 7: 0.8, 8: 1}, 7, 5, 3},
	}
	full := map[int][]byte{} // the models a full run rates, by epoch
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig(6, true)
			cfg.Epochs, cfg.CheckpointEvery = 8, 2
			cfg.Patience, cfg.MinImprovement, cfg.FirstCheckpoint = tc.patience, tc.minGain, tc.first
			var rated []int
			cfg.Checkpoint = func(_ context.Context, epoch int, m *mapper.Model) (float64, error) {
				b, err := m.MarshalBinary()
				if err != nil {
					return 0, err
				}
				if want, ok := full[epoch]; ok && !bytes.Equal(b, want) {
					t.Errorf("epoch %d's model differs from the same epoch of another run", epoch)
				}
				full[epoch] = b
				rated = append(rated, epoch)
				return tc.ratings[epoch], nil
			}
			var events []progress.Event
			m, lg, err := train.Train(context.Background(), rt, p.data, cfg, func(e progress.Event) { events = append(events, e) })
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range rated {
				if first := max(tc.first, cfg.CheckpointEvery); e < first || (e-first)%cfg.CheckpointEvery != 0 {
					t.Errorf("rated epoch %d; checkpoints from %d every %d", e, first, cfg.CheckpointEvery)
				}
			}
			if len(lg.Epochs) != tc.stopped || lg.BestEpoch != tc.bestEpoch {
				t.Fatalf("stopped after epoch %d with best %d (rated %v), want %d and %d", len(lg.Epochs), lg.BestEpoch, rated, tc.stopped, tc.bestEpoch)
			}
			if steps := tc.stopped * (p.data.Normal.Len() / cfg.BatchSize); lg.Steps != steps || steps == 0 {
				t.Errorf("log has %d steps for %d epochs trained", lg.Steps, tc.stopped)
			}
			if last := events[len(events)-1]; last.Done != last.Total {
				t.Errorf("last progress event %d/%d: the bar does not complete", last.Done, last.Total)
			}
			got, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, full[tc.bestEpoch]) {
				t.Errorf("returned model is not epoch %d's checkpoint", tc.bestEpoch)
			}
		})
	}
}

// TestTrainResidualsOnDemand: patches whose residuals come from Residuals
// a step's rows at a time train to the bit-identical model of the same
// patches held as KN and KA matrices (standardisation included).
func TestTrainResidualsOnDemand(t *testing.T) {
	rt := openRT(t, 1)
	p := makeProblem(7, 6, true)
	cfg := smallConfig(6, true)
	cfg.Epochs = 3
	held, _, err := train.Train(context.Background(), rt, p.data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	onDemand := func(x train.Patches) train.Patches {
		kn, ka := x.KN, x.KA
		x.KN, x.KA = nil, nil
		x.Residuals = func(rows []int, dn, da []float32) {
			c := kn.Cols()
			for i, r := range rows {
				copy(dn[i*c:(i+1)*c], kn.Row(r))
				copy(da[i*c:(i+1)*c], ka.Row(r))
			}
		}
		return x
	}
	data := train.Data{Normal: onDemand(p.data.Normal), Seen: onDemand(p.data.Seen)}
	lazy, _, err := train.Train(context.Background(), rt, data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := held.MarshalBinary()
	b, _ := lazy.MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Fatal("training with residuals on demand gave a different model")
	}
	// Neither matrices nor Residuals: a clear error.
	data.Normal.Residuals = nil
	if _, _, err := train.Train(context.Background(), rt, data, cfg, nil); err == nil || !strings.Contains(err.Error(), "k·") {
		t.Fatalf("patches without residuals: %v", err)
	}
}
