// Package train trains DMAD's score mapper (METHOD.md §4) on ONNX Runtime.
// One training step — forward pass over normal patches, their
// pseudo-negatives and seen anomalies, the three-part hinge loss, the
// backward pass and the Adam/AdamW updates — is a single ONNX graph built in
// Go with core/autodiff and run once per step. The Go loop only shuffles,
// gathers batches, draws noise, schedules the learning rate and keeps the
// BatchNorm running statistics.
package train

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/dmad/workstation/core/mapper"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/progress"
)

// Patches are cached knowledge for a set of patches, one row each: the
// feature q, the residuals k·n = q − n and k·a = q − a, the distances
// ‖k·n‖ and ‖k·a‖ (needed when the mapper uses Distances) and the category
// index of the patch's image (informational).
type Patches struct {
	Q, KN, KA *mat.Matrix
	DN, DA    []float32
	Category  []int32
	// Residuals, when set, stands in for KN and KA (then nil): it writes
	// the residuals of the given rows into kn and ka (len(rows)×C each,
	// row-major). Training gathers a step's rows at a time, so the
	// residuals of every patch (2·N·C floats, 0.8 GB for the default
	// 131,072 patches at C = 768) need not be held.
	Residuals func(rows []int, kn, ka []float32)
}

// knRows returns the residuals k·n of rows [lo, hi): a view of KN, or
// computed by Residuals into one reused buffer.
func (p Patches) knRows(c int) func(lo, hi int) *mat.Matrix {
	if p.KN != nil {
		return func(lo, hi int) *mat.Matrix { return p.KN.Slice(lo, hi) }
	}
	var kn, ka []float32
	var rows []int
	return func(lo, hi int) *mat.Matrix {
		n := hi - lo
		if cap(kn) < n*c {
			kn, ka = make([]float32, n*c), make([]float32, n*c)
		}
		kn, ka, rows = kn[:n*c], ka[:n*c], rows[:0]
		for r := lo; r < hi; r++ {
			rows = append(rows, r)
		}
		p.Residuals(rows, kn, ka)
		m, err := mat.FromData(n, c, kn)
		if err != nil {
			return nil // FitStandardizationFrom reports the missing rows
		}
		return m
	}
}

// Len is the number of patches (0 for an empty set).
func (p Patches) Len() int {
	if p.Q == nil {
		return 0
	}
	return p.Q.Rows()
}

func (p Patches) check(what string, c int, distances bool) error {
	n := p.Len()
	for name, x := range map[string]*mat.Matrix{"q": p.Q, "k·n": p.KN, "k·a": p.KA} {
		if n == 0 && (x == nil || x.Rows() == 0) {
			continue
		}
		if x == nil && name != "q" && p.Residuals != nil && p.KN == nil && p.KA == nil {
			continue
		}
		if x == nil || x.Rows() != n || x.Cols() != c {
			return fmt.Errorf("%s patches: %s is not %d×%d", what, name, n, c)
		}
	}
	if distances && (len(p.DN) != n || len(p.DA) != n) {
		return fmt.Errorf("%s patches: %d and %d distances for %d patches", what, len(p.DN), len(p.DA), n)
	}
	return nil
}

// Data is the training set: normal patches (all categories together) and
// the patches of seen anomalies (empty in the unsupervised regime).
type Data struct {
	Normal Patches
	Seen   Patches
}

// Config sets the training schedule and loss.
type Config struct {
	// Mapper shapes the model (ignored when Start is set).
	Mapper mapper.Config
	// Start, when set, is a model to continue training from (e.g. when new
	// annotated defects arrive); its standardisation is kept. It is not
	// modified.
	Start *mapper.Model
	// Epochs is the number of passes over the normal patches (with a
	// Checkpoint, the most: an earlier checkpoint may be returned).
	Epochs int
	// BatchSize is the number of normal patches per step; each also yields
	// one pseudo-negative, so Ψ sees 2·BatchSize (+ SeenPerBatch) rows.
	BatchSize int
	// SeenPerBatch is the number of seen-anomaly patches in every step when
	// Data.Seen has any; the seen set is cycled (oversampled) as needed.
	// 0 means BatchSize/4.
	SeenPerBatch int
	// LR is Adam's peak learning rate for Ψ, LRProj AdamW's for the
	// projection P; both decay by a cosine over the whole run.
	LR, LRProj float32
	// WeightDecay is Adam's L2 coefficient for Ψ; WeightDecayProj AdamW's
	// decoupled decay for P.
	WeightDecay, WeightDecayProj float32
	// Margin is the hinge margin m (paper 0.5, reference 0.8).
	Margin float32
	// Lambda1 weighs the pseudo-negative term, Lambda2 the seen-anomaly term.
	Lambda1, Lambda2 float32
	// NoiseStd is the standard deviation of the pseudo-negative noise per
	// feature dimension, relative to the RMS per dimension of the normal
	// residuals k·n: 1 makes ‖ε‖ about as large as a typical normal ‖k·n‖
	// (pseudo-negatives then overlap the normal patches heavily), 2 puts
	// them clearly off the normal manifold. DefaultConfig uses 1 (see there
	// why).
	NoiseStd float32
	// Seed fixes initialisation, shuffling and noise.
	Seed uint64
	// Logger receives one line per epoch; nil uses slog.Default.
	Logger *slog.Logger
	// Checkpoint, when set, rates the model after epoch FirstCheckpoint,
	// then every CheckpointEvery epochs, and after the last one (e.g. on a
	// validation split; never on test data), and Train returns the
	// best-rated model instead of the last (the earliest on ties). It gets
	// a copy it may keep.
	Checkpoint func(ctx context.Context, epoch int, m *mapper.Model) (float64, error)
	// FirstCheckpoint is the epoch of the first checkpoint (0:
	// CheckpointEvery).
	FirstCheckpoint int
	// CheckpointEvery is the spacing of checkpoints in epochs (0: 4).
	CheckpointEvery int
	// Patience stops training early, with a Checkpoint: once this many
	// checkpoints in a row have not bettered the best rating by more than
	// MinImprovement, the remaining epochs are skipped. The learning-rate
	// schedule still spans all Epochs, so every model trained is the one a
	// full run has at that epoch, and the one returned is the one a full
	// run would return whenever the later checkpoints would not have rated
	// better either. 0 trains every epoch.
	Patience int
	// MinImprovement is how much a checkpoint's rating must exceed the
	// best so far to count as better (ratings closer than this are ties,
	// and ties keep the earlier model); 0 means 1e-4, negative means any
	// increase.
	MinImprovement float64
}

// DefaultConfig is the workstation's training configuration for features
// of dimension c: Adam as in the reference, a fixed 16-epoch schedule of
// 2048-patch steps, and pseudo-negative noise of 1 (relative to the normal
// residual scale). These were chosen on bottle + magnetic_tile (README):
// noise 2 made the pseudo-negatives trivially separable from the first
// step, 0.5 lowered pixel AUROC; 16 epochs over 131,072 patches lifted
// magnetic_tile image AUROC from 0.977 (8 epochs over 65,536) to 0.984, at
// some cost in pixel AUROC. With a Checkpoint (a validation split), the
// model is rated after epoch 2 and every 2 epochs after it, and training
// stops at the first rating that does not better the best: a rating costs a
// few seconds, an epoch 7–20 s, and checkpoints 4 epochs apart trained 4
// epochs past the kept one. The first rating is at epoch 2 because the maps
// are sharpest early (longer training lifts image AUROC and lowers pixel
// AUROC, README): with seen anomalies the split keeps epoch 2 on the
// benchmark, where a first rating at 4 could not offer it.
func DefaultConfig(c int) Config {
	return Config{
		Mapper: mapper.DefaultConfig(c),
		Epochs: 16, BatchSize: 2048,
		LR: 2e-4, LRProj: 1e-4, WeightDecay: 1e-5, WeightDecayProj: 1e-2,
		Margin: 0.5, Lambda1: 1, Lambda2: 10, NoiseStd: 1, Seed: 1,
		Patience: 1, FirstCheckpoint: 2, CheckpointEvery: 2,
	}
}

// EpochLog summarises one epoch (means over its steps).
type EpochLog struct {
	Epoch                            int
	LR                               float32 // at the epoch's last step
	Loss                             float64
	NormalAbove, NegBelow, AnomBelow float64
	Seconds                          float64
}

// Log is the record of a training run.
type Log struct {
	Epochs []EpochLog
	// BestEpoch is the epoch of the returned model (the last one without
	// a Checkpoint); Ratings are the checkpoints' ratings by epoch.
	BestEpoch     int
	Ratings       map[int]float64
	Steps         int
	BatchSize     int // normal patches per step
	SeenPerBatch  int
	Seconds       float64
	StepsPerSec   float64
	PatchesPerSec float64 // rows through Ψ per second (normal + pseudo + seen)
}

func (c Config) validate() error {
	switch {
	case c.Epochs <= 0:
		return fmt.Errorf("train config: %d epochs", c.Epochs)
	case c.BatchSize <= 0:
		return fmt.Errorf("train config: batch size %d", c.BatchSize)
	case c.SeenPerBatch < 0:
		return fmt.Errorf("train config: %d seen patches per batch", c.SeenPerBatch)
	case c.LR < 0 || c.LRProj < 0 || c.NoiseStd < 0 || c.Margin < 0:
		return fmt.Errorf("train config: negative learning rate, noise or margin")
	}
	return nil
}

// Train fits a mapper to data and returns it with the run's log. It is
// deterministic for a seed on a given runtime configuration (one intra-op
// thread guarantees bit-identical runs). report, when not nil, gets a
// progress.Train event after every step (Done and Total count steps).
// Cancelling ctx stops training within one step and returns ctx.Err().
// Errors start with "train" (callers need not wrap them again).
func Train(ctx context.Context, rt *ort.Runtime, data Data, cfg Config, report progress.Func) (*mapper.Model, Log, error) {
	var lg Log
	if err := cfg.validate(); err != nil {
		return nil, lg, err
	}
	model, err := startModel(cfg, data)
	if err != nil {
		return nil, lg, err
	}
	mc := model.Config
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}

	bn := min(cfg.BatchSize, data.Normal.Len())
	bs := 0
	if data.Seen.Len() > 0 {
		bs = cfg.SeenPerBatch
		if bs == 0 {
			bs = max(1, bn/4)
		}
	}
	lg.BatchSize, lg.SeenPerBatch = bn, bs
	g, io := buildStep(model, cfg, bn, bs, false)
	onnxModel, err := g.Marshal()
	if err != nil {
		return nil, lg, fmt.Errorf("train: %w", err)
	}
	sess, err := rt.NewSession(onnxModel, io.inputs, io.outputs)
	if err != nil {
		return nil, lg, fmt.Errorf("train: step graph: %w", err)
	}
	defer sess.Close()

	ps := model.Params()
	state := make([][3][]float32, len(ps)) // parameter, first moment, second moment
	for i, p := range ps {
		state[i] = [3][]float32{append([]float32(nil), p.Data...), make([]float32, len(p.Data)), make([]float32, len(p.Data))}
	}
	runMean := append([]float32(nil), model.RunMean...)
	runVar := append([]float32(nil), model.RunVar...)

	stepsPerEpoch := data.Normal.Len() / bn
	total := stepsPerEpoch * cfg.Epochs
	lg.Steps = total
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x747261696e))
	bat := newBatcher(data, mc, bn, bs, cfg.NoiseStd/model.Std.KScale, rng)

	every := cfg.CheckpointEvery
	if every <= 0 {
		every = 4
	}
	first := cfg.FirstCheckpoint
	if first <= 0 {
		first = every
	}
	var best *mapper.Model
	var bestR float64
	var last progress.Event
	stale := 0 // checkpoints in a row that did not better the best
	minGain := cfg.MinImprovement
	switch {
	case minGain == 0:
		minGain = 1e-4
	case minGain < 0:
		minGain = 0
	}
	lg.Ratings = map[int]float64{}
	lg.BestEpoch = cfg.Epochs
	start := time.Now()
	step := 0
	rows := float64(2*bn + bs)
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		et := time.Now()
		var el EpochLog
		el.Epoch = epoch
		bat.shuffle()
		for s := 0; s < stepsPerEpoch; s++ {
			if err := ctx.Err(); err != nil {
				return nil, lg, err
			}
			step++
			sch := scheduleAt(cfg, step, total)
			feed := stepFeed{}
			feed.putParams(ps, state)
			feed.putSchedule(sch)
			bat.next(s, feed)
			in, err := io.order(feed)
			if err != nil {
				return nil, lg, err
			}
			res, err := sess.Run(in...)
			if err != nil {
				return nil, lg, fmt.Errorf("train: step %d: %w", step, err)
			}
			for i := range ps {
				state[i] = [3][]float32{res[io.newParam[i]].F32, res[io.newM[i]].F32, res[io.newV[i]].F32}
			}
			updateBatchNorm(runMean, runVar, res[io.bnMean].F32, res[io.bnVar].F32, mc.BNMomentum, rows)
			ev := io.event(res)
			ev.Epoch, ev.Epochs, ev.Done, ev.Total = epoch, cfg.Epochs, step, total
			ev.Refit = cfg.Start != nil
			if math.IsNaN(ev.Loss) || math.IsInf(ev.Loss, 0) {
				return nil, lg, fmt.Errorf("train: loss is %v at step %d (epoch %d)", ev.Loss, step, epoch)
			}
			el.LR = sch.lr
			el.Loss += ev.Loss
			el.NormalAbove += ev.NormalAbove
			el.NegBelow += ev.NegBelow
			el.AnomBelow += ev.AnomBelow
			report.Send(ev)
			last = ev
		}
		n := float64(stepsPerEpoch)
		el.Loss /= n
		el.NormalAbove /= n
		el.NegBelow /= n
		el.AnomBelow /= n
		el.Seconds = time.Since(et).Seconds()
		lg.Epochs = append(lg.Epochs, el)
		log.Info("mapper training", "epoch", epoch, "of", cfg.Epochs, "loss", el.Loss,
			"normal_above", el.NormalAbove, "neg_below", el.NegBelow, "anom_below", el.AnomBelow, "s", el.Seconds)
		if cfg.Checkpoint != nil && ((epoch >= first && (epoch-first)%every == 0) || epoch == cfg.Epochs) {
			snap := snapshot(model, ps, state, runMean, runVar)
			r, err := cfg.Checkpoint(ctx, epoch, snap.Clone())
			if err != nil {
				return nil, lg, fmt.Errorf("train: checkpoint at epoch %d: %w", epoch, err)
			}
			lg.Ratings[epoch] = r
			log.Info("mapper checkpoint", "epoch", epoch, "rating", r)
			if best == nil || r > bestR+minGain {
				best, bestR, lg.BestEpoch, stale = snap, r, epoch, 0
			} else if stale++; cfg.Patience > 0 && stale >= cfg.Patience && epoch < cfg.Epochs {
				log.Info("mapper training stopped early", "epoch", epoch, "of", cfg.Epochs, "best_epoch", lg.BestEpoch)
				break
			}
		}
	}
	lg.Steps = step
	if step < total {
		// Stopped early: the last event completes the progress bar.
		last.Done, last.Total = total, total
		report.Send(last)
	}
	lg.Seconds = time.Since(start).Seconds()
	if lg.Seconds > 0 {
		lg.StepsPerSec = float64(step) / lg.Seconds
		lg.PatchesPerSec = float64(step) * rows / lg.Seconds
	}
	if best != nil {
		return best, lg, nil
	}
	return snapshot(model, ps, state, runMean, runVar), lg, nil
}

// snapshot writes the training state (parameters and BatchNorm running
// statistics) into model and returns it; ps alias model's tensors.
func snapshot(model *mapper.Model, ps []mapper.Tensor, state [][3][]float32, runMean, runVar []float32) *mapper.Model {
	for i, p := range ps {
		copy(p.Data, state[i][0])
	}
	copy(model.RunMean, runMean)
	copy(model.RunVar, runVar)
	return model.Clone()
}

// startModel validates data and returns the model training starts from:
// cfg.Start (fine-tuning) or a fresh initialisation standardised on the
// normal patches.
func startModel(cfg Config, data Data) (*mapper.Model, error) {
	if cfg.Start != nil {
		model := cfg.Start.Clone()
		return model, checkData(model.Config, data)
	}
	model, err := mapper.Init(cfg.Mapper, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	mc := model.Config
	if err := checkData(mc, data); err != nil {
		return nil, err
	}
	std, err := mapper.FitStandardizationFrom(data.Normal.Q, data.Normal.knRows(mc.C), data.Normal.DN)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if !mc.Distances {
		std.DMean, std.DScale = 0, 1
	}
	model.Std = std
	return model, nil
}

// checkData checks the training patches against the mapper's width.
func checkData(mc mapper.Config, data Data) error {
	if data.Normal.Len() < 2 {
		return fmt.Errorf("train: %d normal patches, need at least 2", data.Normal.Len())
	}
	if err := data.Normal.check("normal", mc.C, mc.Distances); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := data.Seen.check("seen-anomaly", mc.C, mc.Distances); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

// schedule is one step's learning rates (cosine decay) and Adam bias
// corrections 1−β1ᵗ, 1−β2ᵗ.
type schedule struct{ lr, lrProj, bc1, bc2 float32 }

func scheduleAt(cfg Config, step, total int) schedule {
	frac := 0.5 * (1 + math.Cos(math.Pi*float64(step-1)/float64(total)))
	return schedule{
		lr:     float32(float64(cfg.LR) * frac),
		lrProj: float32(float64(cfg.LRProj) * frac),
		bc1:    float32(1 - math.Pow(adamBeta1, float64(step))),
		bc2:    float32(1 - math.Pow(adamBeta2, float64(step))),
	}
}

// updateBatchNorm folds a step's batch statistics into the running ones
// (the batch variance unbiased over rows samples).
func updateBatchNorm(runMean, runVar, mean, variance []float32, mom float32, rows float64) {
	unbias := float32(rows / (rows - 1))
	for j, mu := range mean {
		runMean[j] = (1-mom)*runMean[j] + mom*mu
		runVar[j] = (1-mom)*runVar[j] + mom*variance[j]*unbias
	}
}

// event reads a step's loss terms from its outputs.
func (io *stepIO) event(res []ort.Tensor) progress.Event {
	ev := progress.Event{Stage: progress.Train,
		Loss:        float64(res[io.loss].F32[0]),
		NormalAbove: float64(res[io.normalAbove].F32[0]),
		NegBelow:    float64(res[io.negBelow].F32[0]),
	}
	if io.anomBelow >= 0 {
		ev.AnomBelow = float64(res[io.anomBelow].F32[0])
	}
	return ev
}

// batcher gathers the rows of each step into reused buffers.
type batcher struct {
	data      Data
	distances bool
	c, bn, bs int
	noise     float64 // raw noise standard deviation per dimension
	rng       *rand.Rand
	perm      []int
	seenPerm  []int
	seenAt    int
	// reused buffers: the normal rows, the pseudo-negative noise, the seen rows
	normal, seen patchBuf
	eps          []float32
}

// patchBuf holds one step's gathered rows of a Patches set.
type patchBuf struct {
	rows      int
	q, kn, ka []float32
	dn, da    []float32
}

func newPatchBuf(rows, c int) patchBuf {
	return patchBuf{rows: rows, q: make([]float32, rows*c), kn: make([]float32, rows*c), ka: make([]float32, rows*c),
		dn: make([]float32, rows), da: make([]float32, rows)}
}

// put gathers rows of p into the buffer and feeds them as the graph inputs
// q, kn, ka and, with distances, dn, da (each name + suffix).
func (pb *patchBuf) put(f stepFeed, suffix string, p Patches, rows []int, c int, distances bool) {
	n := int64(pb.rows)
	gather(pb.q, p.Q, rows)
	if p.KN == nil {
		p.Residuals(rows, pb.kn, pb.ka)
	} else {
		gather(pb.kn, p.KN, rows)
		gather(pb.ka, p.KA, rows)
	}
	f["q"+suffix] = ort.F32Tensor(pb.q, n, int64(c))
	f["kn"+suffix] = ort.F32Tensor(pb.kn, n, int64(c))
	f["ka"+suffix] = ort.F32Tensor(pb.ka, n, int64(c))
	if distances {
		gatherVec(pb.dn, p.DN, rows)
		gatherVec(pb.da, p.DA, rows)
		f["dn"+suffix] = ort.F32Tensor(pb.dn, n, 1)
		f["da"+suffix] = ort.F32Tensor(pb.da, n, 1)
	}
}

func newBatcher(data Data, mc mapper.Config, bn, bs int, noise float32, rng *rand.Rand) *batcher {
	c := mc.C
	b := &batcher{data: data, distances: mc.Distances, c: c, bn: bn, bs: bs, noise: float64(noise), rng: rng,
		perm:   make([]int, data.Normal.Len()),
		normal: newPatchBuf(bn, c), eps: make([]float32, bn*c),
	}
	for i := range b.perm {
		b.perm[i] = i
	}
	if bs > 0 {
		b.seenPerm = make([]int, data.Seen.Len())
		for i := range b.seenPerm {
			b.seenPerm[i] = i
		}
		rng.Shuffle(len(b.seenPerm), func(i, j int) { b.seenPerm[i], b.seenPerm[j] = b.seenPerm[j], b.seenPerm[i] })
		b.seen = newPatchBuf(bs, c)
	}
	return b
}

func (b *batcher) shuffle() {
	b.rng.Shuffle(len(b.perm), func(i, j int) { b.perm[i], b.perm[j] = b.perm[j], b.perm[i] })
}

func gather(dst []float32, src *mat.Matrix, rows []int) {
	c := src.Cols()
	for i, r := range rows {
		copy(dst[i*c:(i+1)*c], src.Row(r))
	}
}

func gatherVec(dst, src []float32, rows []int) {
	for i, r := range rows {
		dst[i] = src[r]
	}
}

// next feeds the batch of step s of the current epoch: the normal rows
// (suffix n), the raw noise eps and, with seen anomalies, their rows
// (suffix a).
func (b *batcher) next(s int, f stepFeed) {
	rows := b.perm[s*b.bn : (s+1)*b.bn]
	b.normal.put(f, "n", b.data.Normal, rows, b.c, b.distances)
	for i := range b.eps {
		b.eps[i] = float32(b.noise * b.rng.NormFloat64())
	}
	f["eps"] = ort.F32Tensor(b.eps, int64(b.bn), int64(b.c))
	if b.bs == 0 {
		return
	}
	srows := make([]int, b.bs)
	for i := range srows {
		if b.seenAt == len(b.seenPerm) {
			b.seenAt = 0
			b.rng.Shuffle(len(b.seenPerm), func(i, j int) { b.seenPerm[i], b.seenPerm[j] = b.seenPerm[j], b.seenPerm[i] })
		}
		srows[i] = b.seenPerm[b.seenAt]
		b.seenAt++
	}
	b.seen.put(f, "a", b.data.Seen, srows, b.c, b.distances)
}
