package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"maps"
	"math"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/mapper"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/train"
)

// Image is one training image with its cached patch features: in memory
// (Features) or read when needed (Load), so that a training set need not
// fit in memory.
type Image struct {
	// ID is unique within the training set; bank entries remember it so a
	// training patch never finds its own image (METHOD.md §3 [ours]).
	ID       int32
	Category string
	// Features are the patch features when held in memory.
	Features *mat.Matrix
	// Load, when Features is nil, reads the features (from a cache on
	// disk); Patches is then their row count. Fit streams such images a
	// few times (coreset projection, the kept rows, the mapper's sample)
	// and never holds more than one block of them.
	Load    func() (*mat.Matrix, error)
	Patches int
	// Mask marks the defect of a seen anomaly (nil for normal images).
	Mask *image.Gray
	// Flags, when Mask is nil, mark the seen-anomaly patches directly
	// (the patches picked from a weakly labelled image).
	Flags []bool
}

// TrainSet is what a model is fitted on.
type TrainSet struct {
	// Normal images of every category (unified).
	Normal []Image
	// Seen anomalies with masks; empty in the unsupervised regime.
	Seen []Image
	// OOD holds out-of-distribution patches from synthetic defects
	// (see OODPatches); DMAD only.
	OOD *mat.Matrix
	// Weak are anomalies known to be defective but without a mask (DMAD
	// only; see Options.WeakRounds).
	Weak []Image
	// Validation, when set, is the validation split that chooses the map
	// fusion (see NewValidation); its source images are held out of the
	// mapper's training patches.
	Validation *Validation
}

// Options configure Fit. Zero values take the defaults in brackets.
type Options struct {
	Method Method // [DMAD]
	// CoresetRatio is the fraction of normal patches kept in M_n [0.02].
	CoresetRatio float64
	// NormalBank, when set, is reused instead of building M_n (the
	// benchmark shares one bank between PatchCore and both DMAD regimes).
	NormalBank *banks.NormalBank
	// Attention adds attention knowledge; METHOD.md uses it only in the
	// unsupervised regime, and Fit ignores it when there are seen anomalies.
	Attention bool
	// TrainPatches is the number of normal patches sampled (over all
	// normal images) to train the mapper on [131072].
	TrainPatches int
	// PseudoCount is the number of normal-plus-noise pseudo-anomalies in the
	// unsupervised anomaly bank [as many as M_n].
	PseudoCount int
	// PseudoStd and CentredStd are the bank noise scales (see banks.AnomalyInputs).
	PseudoStd, CentredStd float32
	// Train is the mapper's training configuration; a zero Epochs takes
	// train.DefaultConfig for the feature dimension.
	Train train.Config
	// ThresholdImages is how many normal training images are scored (with
	// their own bank entries excluded) to set the decision threshold [64].
	ThresholdImages int
	// ThresholdQuantile is the quantile of those scores used [0.99].
	ThresholdQuantile float64
	// MapWeights are the candidate mapper weights of the map fusion; the
	// validation split picks one [FusionWeights]. Without a validation
	// split the first is used [DefaultMapperWeight].
	MapWeights []float32
	// WeakRounds is how many times the weak images' patches are picked
	// and the model refitted [1].
	WeakRounds int
	// WeakFraction caps the patches taken from one weak image as seen
	// anomalies: its top-scoring WeakFraction of patches, at least one
	// [DefaultWeakFraction].
	WeakFraction float64
	// FixedSchedule trains for all of Train.Epochs even with a validation
	// split (otherwise the split rates a checkpoint after
	// Train.FirstCheckpoint epochs and every Train.CheckpointEvery after it,
	// and the best one is kept; a later one must better the best by
	// Train.MinImprovement, by default the image AUROC of one pair of the
	// split's images, see splitPairGain).
	FixedSchedule bool
	// Start, when set, is an earlier DMAD model of the same normal images
	// and backbone that this fit updates after new annotations (its
	// weak-label rounds refit too): its normal bank (unless NormalBank is set)
	// and category routing are reused, and its mapper is fine-tuned on a
	// smaller sample of normal patches for Refit.Epochs, searched and
	// scored by the fast cascade, instead of trained from scratch. The
	// anomaly bank is rebuilt from the training set, so it holds the new
	// seen anomalies. Where Start's anomaly bank has seen anomalies and the
	// training set none, or the other way round, the mapper is trained from
	// scratch (the bank's make-up changes too much for a fine-tune). Start
	// is not modified.
	Start *Model
	// Refit configures a fit from Start.
	Refit RefitOptions
	// Search configures nearest-neighbour search.
	Search banks.SearchOptions
	// ExactKnowledge searches the mapper's training patches and the
	// validation split exactly. By default they are searched by the fast
	// cascade (banks.SearchFast), whatever Search says: it re-ranks its
	// candidates exactly, so the neighbours are the exact ones but for rare
	// misses (recall@1 1.000 in BenchmarkSearchModes), at a fifth of the
	// FLOPs (the split's exact search with same-image exclusion took 30 s
	// of a 412 s fit on a slow spell).
	ExactKnowledge bool
	// ExactThreshold scores the threshold images (ThresholdImages normal
	// training images) exactly. By default a first fit scores them by the
	// fast cascade, routed to each image's category's part of the banks
	// where the model routes, as the knowledge is: their scores set a
	// quantile, which rare misses (a neighbour found slightly farther)
	// can only raise, and exact search with same-image exclusion cost a
	// sixth of a fit. A refit follows Refit.ExactScoring instead.
	ExactThreshold bool
	// Memory is the memory budget in bytes; 0 sets no bound. The normal
	// bank's coreset selects over at most a third of it (at 128 dims and
	// 8 bytes a value: the projection, its int16 copy and the copies the
	// selection's groups make as members move; 1M patches per GiB) and in two
	// stages beyond that (banks.CoresetOptions.MaxPoints); each search's
	// distance matrices take at most a 64th (searchBuffer).
	Memory int64
	Seed   int64
	// EncoderID, Card and Encoder describe the features (recorded in Meta).
	EncoderID string
	Card      *encoder.Card
	Encoder   encoder.Config
}

// RefitOptions configure a fit that updates an earlier model
// (Options.Start). Zero values take the defaults in brackets.
type RefitOptions struct {
	// Patches is the number of normal patches the fine-tune trains on,
	// sampled from a random subset of the normal images (about four
	// patches read for each one kept) [DefaultRefitPatches].
	Patches int
	// Epochs is the fine-tune's passes over them, on their own cosine
	// schedule from the training configuration's peak learning rate
	// [DefaultRefitEpochs]. The fine-tune runs every epoch: no
	// checkpoints are rated.
	Epochs int
	// ExactScoring scores the threshold images and the validation split
	// with Search as it is; by default a refit scores them with the fast
	// cascade, whose scores equal exact ones but for rare missed
	// neighbours.
	ExactScoring bool
}

// Defaults of RefitOptions: 16,384 patches × 4 epochs are 32 steps of
// 2048, an eighth of a first training's 256 steps to its first checkpoint.
const (
	DefaultRefitPatches = 16384
	DefaultRefitEpochs  = 4
)

func (o Options) withDefaults(c int) Options {
	if o.Method == "" {
		o.Method = DMAD
	}
	if o.CoresetRatio <= 0 {
		o.CoresetRatio = DefaultCoresetRatio
	}
	if o.TrainPatches <= 0 {
		o.TrainPatches = DefaultTrainPatches
	}
	if o.Train.Epochs <= 0 {
		seed := o.Train.Seed
		o.Train = train.DefaultConfig(c)
		if seed != 0 {
			o.Train.Seed = seed
		}
	}
	if o.Train.Mapper.Hidden == 0 {
		o.Train.Mapper = mapper.DefaultConfig(c)
	}
	o.Train.Mapper.C = c
	if o.ThresholdImages <= 0 {
		o.ThresholdImages = DefaultThresholdImages
	}
	if o.WeakRounds <= 0 {
		o.WeakRounds = 1
	}
	if o.WeakFraction <= 0 {
		o.WeakFraction = DefaultWeakFraction
	}
	if o.ThresholdQuantile <= 0 {
		o.ThresholdQuantile = DefaultThresholdQuantile
	}
	if o.Memory > 0 && o.Search.BufferBytes == 0 {
		o.Search.BufferBytes = searchBuffer(o.Memory)
	}
	if o.Refit.Patches <= 0 {
		o.Refit.Patches = DefaultRefitPatches
	}
	if o.Refit.Epochs <= 0 {
		o.Refit.Epochs = DefaultRefitEpochs
	}
	return o
}

// checkStart reports whether opts.Start can be updated with features of
// dimension c by method opts.Method.
func checkStart(opts Options, c int) error {
	st := opts.Start
	switch {
	case st == nil:
		return nil
	case opts.Method != DMAD || st.Mapper == nil || st.Normal == nil:
		return errors.New("fit: only a DMAD model can be refitted")
	case st.Mapper.Config.C != c || st.Normal.Features.Cols() != c:
		return fmt.Errorf("fit: the earlier model has features of dimension %d, the training set %d", st.Mapper.Config.C, c)
	case opts.EncoderID != "" && st.Meta.EncoderID != "" && st.Meta.EncoderID != opts.EncoderID:
		return fmt.Errorf("fit: the earlier model uses backbone %s, the training set %s", st.Meta.EncoderID, opts.EncoderID)
	}
	return nil
}

// searchBuffer is the share of a memory budget one nearest-neighbour
// search's distance matrices may take (banks.SearchOptions.BufferBytes):
// ONNX Runtime keeps each graph's buffers between runs, and a training
// holds four such searchers (both banks, then the scorer's), with room for
// the arena's rounding. 3 GiB gives 48 MiB, ~150 queries a run over an
// 80,000-row bank.
func searchBuffer(budget int64) int64 { return budget / 64 }

// Fit builds the banks and, for DMAD, trains the mapper.
func Fit(ctx context.Context, rt *ort.Runtime, set TrainSet, opts Options, report progress.Func) (*Model, error) {
	if len(set.Normal) == 0 {
		return nil, errors.New("fit: no normal training images")
	}
	first, err := set.Normal[0].features()
	if err != nil {
		return nil, fmt.Errorf("fit: %w", err)
	}
	c := first.Cols()
	opts = opts.withDefaults(c)
	if report == nil {
		report = func(progress.Event) {}
	}
	if err := checkStart(opts, c); err != nil {
		return nil, err
	}
	start := time.Now()
	m, err := newModel(set, opts, c)
	if err != nil {
		return nil, err
	}
	if opts.Start != nil && opts.NormalBank == nil {
		opts.NormalBank = opts.Start.Normal
	}
	// M_n: one coreset over the normal patches of all categories.
	if m.Normal = opts.NormalBank; m.Normal == nil {
		t := time.Now()
		if m.Normal, err = normalBank(ctx, rt, set.Normal, opts, c, report); err != nil {
			return nil, err
		}
		m.Meta.NormalBankSeconds = time.Since(t).Seconds()
	}
	if opts.Start != nil && opts.Start.Normal == m.Normal && opts.Start.Meta.CategoryAgreement != nil {
		// The same bank: the same agreement.
		keepAgreeingCategories(m, opts.Start.Meta.CategoryAgreement)
	} else if err := keepRoutableCategories(ctx, rt, m, opts); err != nil {
		return nil, err
	}
	if opts.Method == DMAD {
		if err := fitDMAD(ctx, rt, m, set, opts, c, opts.Start, report); err != nil {
			return nil, err
		}
		if err := fitWeak(ctx, rt, m, set, opts, c, report); err != nil {
			return nil, err
		}
	}
	if opts.Start != nil && !opts.Refit.ExactScoring || opts.Start == nil && !opts.ExactThreshold {
		opts.Search.Mode = banks.SearchFast
	}
	if err := setThreshold(ctx, rt, m, set, opts, report); err != nil {
		return nil, err
	}
	m.Meta.TrainSeconds = time.Since(start).Seconds()
	return m, nil
}

// newModel checks the normal images' features and describes the model.
func newModel(set TrainSet, opts Options, c int) (*Model, error) {
	cats := map[string]bool{}
	for _, im := range set.Normal {
		if (im.Features == nil || im.Features.Cols() != c) && (im.Load == nil || im.Patches <= 0) {
			return nil, fmt.Errorf("fit: normal image %d has no features of dimension %d", im.ID, c)
		}
		cats[im.Category] = true
	}
	m := &Model{Meta: Meta{
		Method: opts.Method, Regime: Unsupervised, EncoderID: opts.EncoderID, Card: opts.Card,
		Encoder: opts.Encoder, SeenImages: len(set.Seen),
	}}
	for cat := range cats {
		m.Meta.Categories = append(m.Meta.Categories, cat)
	}
	m.Meta.CategoryImages = map[string][]int32{}
	for _, ims := range [][]Image{set.Normal, set.Seen, set.Weak} {
		for _, im := range ims {
			m.Meta.CategoryImages[im.Category] = append(m.Meta.CategoryImages[im.Category], im.ID)
		}
	}
	sort.Strings(m.Meta.Categories)
	if len(set.Seen) > 0 || (len(set.Weak) > 0 && opts.Method == DMAD) {
		m.Meta.Regime = Semi
	}
	if opts.Method == DMAD {
		m.Meta.WeakImages = len(set.Weak)
	}
	return m, nil
}

// RouteAgreement is the share of a category's normal-bank entries whose
// nearest entry from another image must be of the same category for the
// fast search to route that category's images to its part of the banks.
const RouteAgreement = 0.99

// keepRoutableCategories keeps in Meta.CategoryImages only the categories
// the fast search may route (see Scorer): those whose normal-bank entries
// find their nearest entry of another image within the category
// (RouteAgreement). Categories a backbone does not tell apart would
// otherwise lose neighbours the whole bank has; distinct ones (a bottle and
// a tile) keep them all. It costs one exact search of the bank against
// itself. A model of one category routes nothing.
func keepRoutableCategories(ctx context.Context, rt *ort.Runtime, m *Model, opts Options) error {
	if len(m.Meta.CategoryImages) < 2 {
		m.Meta.CategoryImages = nil
		return nil
	}
	catOf := map[int32]string{}
	for c, ids := range m.Meta.CategoryImages {
		for _, id := range ids {
			catOf[id] = c
		}
	}
	nb := m.Normal
	so := opts.Search
	so.Mode, so.Source = banks.SearchExact, nb.Source
	s, err := banks.NewSearcher(rt, nb.Features, so)
	if err != nil {
		return fmt.Errorf("fit: category routing: %w", err)
	}
	defer s.Close()
	_, idx, err := s.SearchExcluding(ctx, nb.Features, nb.Source, 1)
	if err != nil {
		return fmt.Errorf("fit: category routing: %w", err)
	}
	same, total := map[string]int{}, map[string]int{}
	for r, j := range idx {
		c := catOf[nb.Source[r]]
		total[c]++
		if j >= 0 && catOf[nb.Source[j]] == c {
			same[c]++
		}
	}
	agree := map[string]float64{}
	for c := range m.Meta.CategoryImages {
		if total[c] > 0 {
			agree[c] = float64(same[c]) / float64(total[c])
		}
	}
	keepAgreeingCategories(m, agree)
	return nil
}

// keepAgreeingCategories records the categories' agreement (see
// keepRoutableCategories; a category absent from agree has none) and
// keeps in Meta.CategoryImages those that reach RouteAgreement.
func keepAgreeingCategories(m *Model, agree map[string]float64) {
	if len(m.Meta.CategoryImages) < 2 {
		m.Meta.CategoryImages = nil
		return
	}
	m.Meta.CategoryAgreement = map[string]float64{}
	for _, c := range slices.Sorted(maps.Keys(m.Meta.CategoryImages)) {
		share := agree[c]
		m.Meta.CategoryAgreement[c] = share
		if share < RouteAgreement {
			delete(m.Meta.CategoryImages, c)
		}
	}
}

// normalBank builds M_n from the patches of every normal image, streamed
// image by image: the coreset holds only their projection.
func normalBank(ctx context.Context, rt *ort.Runtime, normal []Image, opts Options, c int, report progress.Func) (*banks.NormalBank, error) {
	report(progress.Event{Stage: progress.Bank})
	feats := ImageRows{Images: normal, Dim: c}
	src := make([]int32, 0, feats.Rows())
	for _, im := range normal {
		for range im.rows() {
			src = append(src, im.ID)
		}
	}
	nb, err := banks.BuildNormalBankSource(ctx, feats, src, opts.CoresetRatio, banks.CoresetOptions{
		Seed: opts.Seed, Runtime: rt, Progress: report, MaxPoints: coresetMaxPoints(opts.Memory, c),
	})
	if err != nil {
		return nil, err // its errors say "build normal bank"
	}
	nb.Backbone = opts.EncoderID
	return nb, nil
}

// coresetMaxPoints is how many patches the coreset may select over at once
// within a third of budget: each holds a 128-dim projection (the feature
// itself below 128 dims), 4 bytes a value, and the selection's int16 copy
// of it and the copies its groups make, 2 + 2 bytes.
func coresetMaxPoints(budget int64, c int) int {
	if budget <= 0 {
		return 0
	}
	return int(budget / 3 / int64(8*min(c, 128)))
}

// fitDMAD builds M_a, computes the training patches' knowledge and trains
// the mapper.
// With start set it fine-tunes start's mapper instead (see Options.Start).
func fitDMAD(ctx context.Context, rt *ort.Runtime, m *Model, set TrainSet, opts Options, c int, start *Model, report progress.Func) error {
	rng := rand.New(rand.NewSource(opts.Seed + 7))
	// Sampled normal training patches (rows across all images, all categories).
	trainImgs, err := trainingImages(set)
	if err != nil {
		return err
	}
	// Seen-anomaly patches: Filter by their masks.
	seenQ, seenSrc, seenCat, err := filterSeen(set.Seen, opts.Encoder, m.Meta.Categories)
	if err != nil {
		return err
	}
	if start != nil && hasSeen(start.Anomaly) != (seenQ != nil && seenQ.Rows() > 0) {
		// The first seen anomalies change what M_a holds (its noisy-normal
		// part goes), and with it every patch's knowledge: a short
		// fine-tune does not follow (refitting the weak rounds from an
		// unsupervised model lost 0.04 image AUROC), so the mapper is
		// trained from scratch.
		start = nil
	}
	m.Meta.Attention = opts.Attention && len(set.Seen) == 0
	if start != nil {
		m.Meta.Attention = start.Meta.Attention && len(set.Seen) == 0
	}
	nPatches := opts.TrainPatches
	if start != nil {
		nPatches = opts.Refit.Patches
		trainImgs = imageSubset(trainImgs, refitReadFactor*nPatches, rng)
	}
	lap := newStageClock(start != nil)
	normQ, normSrc, normCat, err := samplePatches(trainImgs, nPatches, rng, m.Meta.Categories)
	if err != nil {
		return err
	}
	lap("sample training patches")

	// M_a.
	report(progress.Event{Stage: progress.AnomalyBank})
	pseudoN := opts.PseudoCount
	if pseudoN <= 0 {
		pseudoN = min(m.Normal.Len(), normQ.Rows())
	}
	m.Anomaly, err = banks.BuildAnomalyBank(ctx, banks.AnomalyInputs{
		Normal: normQ, NormalSource: normSrc, PseudoCount: pseudoN, PseudoStd: opts.PseudoStd,
		OOD: set.OOD, Seen: seenQ, SeenSource: seenSrc, CentredStd: opts.CentredStd,
		Seed: opts.Seed, Backbone: opts.EncoderID,
	})
	if err != nil {
		return err // its errors say "build anomaly bank"
	}
	lap("anomaly bank")

	// Knowledge for the training patches and the validation split,
	// same-image entries excluded (see Options.ExactKnowledge).
	kn, err := banks.NewKnowledge(rt, m.Normal, m.Anomaly, banks.KnowledgeOptions{Search: opts.Search})
	if err != nil {
		return err
	}
	defer kn.Close()
	knTrain := kn
	if !opts.ExactKnowledge && opts.Search.Mode != banks.SearchFast {
		fast := opts.Search
		fast.Mode = banks.SearchFast
		if knTrain, err = banks.NewKnowledge(rt, m.Normal, m.Anomaly, banks.KnowledgeOptions{Search: fast}); err != nil {
			return err
		}
		defer knTrain.Close()
	}
	data := train.Data{}
	data.Normal, err = knowledgePatches(ctx, knTrain, normQ, normSrc, normCat, m.Meta.Attention, report)
	if err != nil {
		return err
	}
	if seenQ != nil && seenQ.Rows() > 0 {
		data.Seen, err = knowledgePatches(ctx, knTrain, seenQ, seenSrc, seenCat, m.Meta.Attention, report)
		if err != nil {
			return err
		}
	}

	lap("training knowledge")
	tc := opts.Train
	tc.Mapper.C = c
	m.validation = nil
	if start != nil {
		tc.Start, tc.Mapper, tc.Epochs = start.Mapper, start.Mapper.Config, opts.Refit.Epochs
		tc.Checkpoint = nil
		model, lg, err := train.Train(ctx, rt, data, tc, report)
		if err != nil {
			return err
		}
		lap("mapper fine-tune")
		model.Backbone = opts.EncoderID
		m.Mapper = model
		// The mapper's epoch and how it was chosen are start's.
		m.Meta.Epochs, m.Meta.Checkpoints = start.Meta.Epochs, start.Meta.Checkpoints
		m.Meta.RefitSteps = start.Meta.RefitSteps + lg.Steps
		if m.Meta.MapFusion == nil && start.Meta.MapFusion != nil {
			// Until setThreshold calibrates it anew, start's fusion is
			// the best map there is (the weak images' patches are picked
			// on it).
			fu := *start.Meta.MapFusion
			m.Meta.MapFusion = &fu
		}
		return nil
	}
	m.Meta.RefitSteps = 0 // a mapper trained from scratch
	var val []valItem     // the split searched in these banks (first checkpoint)
	if set.Validation != nil && len(set.Validation.Defects) > 0 && !opts.FixedSchedule {
		m.Meta.Checkpoints = nil
		if tc.MinImprovement == 0 {
			tc.MinImprovement = splitPairGain(set)
		}
		fusions := map[int]*MapFusion{}
		defer func() {
			// Until setThreshold calibrates the final fusion, the kept
			// checkpoint's is the model's best map (the weak images'
			// patches are picked on it).
			m.Meta.MapFusion = fusions[m.Meta.Epochs]
		}()
		tc.Checkpoint = func(ctx context.Context, epoch int, mm *mapper.Model) (float64, error) {
			if val == nil {
				var err error
				whole := func(string) *banks.Knowledge { return knTrain }
				if val, err = validationItems(ctx, whole, set, m.Meta.Attention); err != nil {
					return 0, err
				}
			}
			v, fu, err := rateCheckpoint(ctx, rt, kn, m.Meta.Attention, val, mm, set, opts)
			if err != nil {
				return 0, err
			}
			fusions[epoch] = fu
			v.Epoch = epoch
			m.Meta.Checkpoints = append(m.Meta.Checkpoints, v)
			return v.Criterion() + v.ImageAUROC, nil
		}
	}
	model, lg, err := train.Train(ctx, rt, data, tc, report)
	if err != nil {
		return err // the errors of train.Train say "train"
	}
	lap("mapper training")
	m.Meta.Epochs = lg.BestEpoch
	model.Backbone = opts.EncoderID
	m.Mapper = model
	if val != nil {
		m.validation = &validationCache{normal: m.Normal, anomaly: m.Anomaly, items: val}
	}
	return nil
}

// splitPairGain is the image AUROC one pair of the validation split's
// images is worth, 1/(defective × clean images): the least a later
// checkpoint must better the best rating by to be kept. The split is
// small (the benchmark's semi-supervised one: 52 defective, 16 clean
// images), and a rating gain below one pair swapped in image order is its
// noise: dmad-semi's epoch 6 rated 2.4e-4 above epoch 4 (image AUROC one
// pair higher, the maps' criterion 9e-4 lower) and lost on the test images.
func splitPairGain(set TrainSet) float64 {
	clean := map[int32]bool{}
	for _, im := range set.Validation.Defects {
		clean[im.ID] = true
	}
	defects := len(set.Validation.Defects)
	for _, im := range set.Seen {
		if im.Mask != nil {
			defects++
		}
	}
	if defects == 0 || len(clean) == 0 {
		return 0
	}
	return 1 / float64(defects*len(clean))
}

// newStageClock returns a function that logs (at Info) the seconds since
// its last call, or since newStageClock, under a stage name: the breakdown
// of a fit that --verbose shows.
func newStageClock(refit bool) func(stage string) {
	t := time.Now()
	return func(stage string) {
		now := time.Now()
		slog.Info("fit stage", "stage", stage, "refit", refit, "s", now.Sub(t).Seconds())
		t = now
	}
}

// hasSeen reports whether ab holds seen-anomaly entries.
func hasSeen(ab *banks.AnomalyBank) bool {
	return ab != nil && slices.Contains(ab.Kind, banks.KindSeen)
}

// refitReadFactor is how many normal patches a refit reads for each one
// it samples (see imageSubset).
const refitReadFactor = 4

// imageSubset returns images in random order until they hold at least
// rows patches (all of them when they hold fewer), so that a small sample
// of patches need not read every image.
func imageSubset(imgs []Image, rows int, rng *rand.Rand) []Image {
	var out []Image
	n := 0
	for _, i := range rng.Perm(len(imgs)) {
		if n >= rows {
			break
		}
		out = append(out, imgs[i])
		n += imgs[i].rows()
	}
	return out
}

// trainingImages are the normal images the mapper trains on: all but the
// validation split's held-out ones.
func trainingImages(set TrainSet) ([]Image, error) {
	held := set.Validation.HeldOut()
	if len(held) == 0 {
		return set.Normal, nil
	}
	out := make([]Image, 0, len(set.Normal))
	for _, im := range set.Normal {
		if !held[im.ID] {
			out = append(out, im)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("fit: the validation split holds out every normal image")
	}
	return out, nil
}

// knowledgePatches searches both banks for the training patches q (in
// slices, so progress shows) and keeps only their neighbours and
// distances: the residuals are computed from them a training step's rows
// at a time (train.Patches.Residuals), which saves holding 2·N·C floats.
// kn must stay open while the patches are used.
func knowledgePatches(ctx context.Context, kn *banks.Knowledge, q *mat.Matrix, src, cat []int32, attention bool, report progress.Func) (train.Patches, error) {
	if q == nil || q.Rows() == 0 {
		return train.Patches{}, errors.New("knowledge: no patches")
	}
	var nb *banks.Neighbours
	const step = 8192
	for from := 0; from < q.Rows(); from += step {
		to := min(from+step, q.Rows())
		part, err := kn.Neighbours(ctx, q.Slice(from, to), src[from:to], attention)
		if err != nil {
			return train.Patches{}, fmt.Errorf("knowledge: %w", err)
		}
		if nb == nil {
			nb = part
		} else if err := nb.Append(part); err != nil {
			return train.Patches{}, err
		}
		report(progress.Event{Stage: progress.Knowledge, Done: to, Total: q.Rows()})
	}
	if err := nb.Check(q.Rows()); err != nil {
		return train.Patches{}, err
	}
	p := train.Patches{Q: q, DN: make([]float32, q.Rows()), DA: make([]float32, q.Rows()), Category: cat,
		Residuals: func(rows []int, kN, kA []float32) { kn.ResidualsInto(q, nb, rows, kN, kA) }}
	for r := range q.Rows() {
		p.DN[r], p.DA[r] = nb.Normal.Dist[r*nb.Normal.K], nb.Anomaly.Dist[r*nb.Anomaly.K]
	}
	return p, nil
}

func catIndex(cats []string) map[string]int32 {
	idx := map[string]int32{}
	for i, c := range cats {
		idx[c] = int32(i)
	}
	return idx
}

// samplePatches draws n patch rows uniformly over all images (all rows when
// there are fewer), returning them with their image ids and categories.
// Images are read one at a time.
func samplePatches(imgs []Image, n int, rng *rand.Rand, cats []string) (*mat.Matrix, []int32, []int32, error) {
	ci := catIndex(cats)
	total := 0
	for _, im := range imgs {
		total += im.rows()
	}
	var picks []int
	if n >= total {
		picks = make([]int, total)
		for i := range picks {
			picks[i] = i
		}
	} else {
		picks = rng.Perm(total)[:n]
		sort.Ints(picks)
	}
	var q *mat.Matrix
	src := make([]int32, len(picks))
	cat := make([]int32, len(picks))
	img, base := 0, 0
	var f *mat.Matrix
	for i, p := range picks {
		for p >= base+imgs[img].rows() {
			base += imgs[img].rows()
			img++
			f = nil
		}
		if f == nil {
			var err error
			if f, err = imgs[img].features(); err != nil {
				return nil, nil, nil, fmt.Errorf("training sample: %w", err)
			}
			if q == nil {
				q = mat.New(len(picks), f.Cols())
			}
		}
		copy(q.Row(i), f.Row(p-base))
		src[i] = imgs[img].ID
		cat[i] = ci[imgs[img].Category]
	}
	return q, src, cat, nil
}

// filterSeen keeps the patches of seen anomalies that their masks flag.
func filterSeen(seen []Image, cfg encoder.Config, cats []string) (*mat.Matrix, []int32, []int32, error) {
	if len(seen) == 0 {
		return nil, nil, nil, nil
	}
	ci := catIndex(cats)
	var q *mat.Matrix
	var src, cat []int32
	for _, im := range seen {
		feats, err := im.features()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("seen anomaly: %w", err)
		}
		if q == nil {
			q = mat.WithCapacity(0, feats.Cols())
		}
		flags := im.Flags
		switch {
		case im.Mask != nil:
			h0, w0 := gridOf(feats.Rows())
			flags = encoder.Filter(im.Mask, h0, w0, cfg)
		case len(flags) != feats.Rows():
			return nil, nil, nil, fmt.Errorf("seen anomaly %d (%s) has no mask", im.ID, im.Category)
		}
		for i, f := range flags {
			if f {
				q.AppendRow(feats.Row(i))
				src = append(src, im.ID)
				cat = append(cat, ci[im.Category])
			}
		}
	}
	return q, src, cat, nil
}

// gridOf recovers the square patch grid from a row count.
func gridOf(rows int) (int, int) {
	s := 1
	for s*s < rows {
		s++
	}
	return s, rows / s
}

// setThreshold scores a sample of normal training images with their own
// bank entries excluded — a fair stand-in for unseen normal images — and
// sets the decision threshold at a high quantile of their image scores.
// For DMAD the same patches calibrate the map fusion, whose weight the
// validation split then picks (see chooseFusion).
func setThreshold(ctx context.Context, rt *ort.Runtime, m *Model, set TrainSet, opts Options, report progress.Func) error {
	normal := set.Normal
	lap := newStageClock(opts.Start != nil)
	sc, err := NewScorer(rt, m, opts.Search)
	if err != nil {
		return err
	}
	defer sc.Close()
	rng := rand.New(rand.NewSource(opts.Seed + 11))
	order := rng.Perm(len(normal))
	n := min(len(normal), opts.ThresholdImages)
	// The sample's images by category, searched several to a call as test
	// images are (one call per image cost twice as much per image); each
	// patch's neighbours do not depend on the others of its call.
	picked := make([]Image, n)
	for k := range picked {
		picked[k] = normal[order[k]]
	}
	slices.SortStableFunc(picked, func(a, b Image) int { return strings.Compare(a.Category, b.Category) })
	byCat := map[string][]float32{}
	var all, allS, allD []float32
	const group = 16
	for from, to := 0, 0; from < n; from = to {
		to = runEnd(from, n, group, func(i int) string { return picked[i].Category })
		feats := make([]*mat.Matrix, to-from)
		var src []int32
		for i, im := range picked[from:to] {
			f, err := im.features()
			if err != nil {
				return fmt.Errorf("threshold: %w", err)
			}
			feats[i] = f
			src = append(src, sourceOf(im)...)
		}
		q, err := mat.Append(feats...)
		if err != nil {
			return fmt.Errorf("threshold: %w", err)
		}
		// Searched as a test image of its category is (in fast mode, its
		// category's part of the banks), its own entries excluded.
		patches, dists, err := sc.partsIn(ctx, picked[from].Category, q, src)
		if err != nil {
			return fmt.Errorf("threshold: %w", err)
		}
		off := 0
		for i, im := range picked[from:to] {
			rows := feats[i].Rows()
			patch := patches[off : off+rows]
			_, s := heatmap.ImageScore(patch)
			all = append(all, s)
			byCat[im.Category] = append(byCat[im.Category], s)
			allS, allD = append(allS, patch...), append(allD, dists[off:off+rows]...)
			off += rows
		}
		report(progress.Event{Stage: progress.Threshold, Done: to, Total: n})
	}
	lap("threshold images")
	m.Meta.Threshold = quantile(all, opts.ThresholdQuantile)
	m.Meta.CategoryThresholds = map[string]float32{}
	for cat, s := range byCat {
		m.Meta.CategoryThresholds[cat] = quantile(s, opts.ThresholdQuantile)
	}
	if opts.Method == DMAD {
		var val []valScored // the validation split, scored once for both uses
		if set.Validation != nil && len(set.Validation.Defects) > 0 {
			if vc := m.validation; vc != nil && vc.normal == m.Normal && vc.anomaly == m.Anomaly {
				// The checkpoints searched the split in these banks.
				val, err = scoreValidationItems(ctx, sc.kn, sc.ms, vc.items)
			} else {
				val, err = scoreValidation(ctx, sc, set)
			}
			if err != nil {
				return err
			}
		}
		lap("validation split")
		m.validation = nil
		// The mapper trained on the sampled images' patches, so it scores
		// them lower than parts it never saw (the demo's first evaluation
		// had one false alarm in six good parts per category). The
		// validation split's held-out normal images are such parts: no
		// threshold is set below their scores.
		raiseToHeldOut(m, val)
		if err := chooseFusion(ctx, m, opts, allS, allD, val); err != nil {
			return err
		}
		lap("map fusion")
	}
	fused := m.Meta.MapFusion.Fuse(nil, allS, allD)
	m.Meta.MapLo, m.Meta.MapHi = 0, 0
	for i, v := range fused {
		if i == 0 || v < m.Meta.MapLo {
			m.Meta.MapLo = v
		}
		if i == 0 || v > m.Meta.MapHi {
			m.Meta.MapHi = v
		}
	}
	return nil
}

// sourceOf gives every patch of a training image the image's id, so its own
// bank entries are skipped.
func sourceOf(im Image) []int32 {
	src := make([]int32, patchesOf(im))
	for i := range src {
		src[i] = im.ID
	}
	return src
}

// patchesOf is the number of patches of im, in memory or streamed.
func patchesOf(im Image) int {
	if im.Features != nil {
		return im.Features.Rows()
	}
	return im.Patches
}

// chooseFusion calibrates the map fusion on the normal patches s, d and
// picks its mapper weight: the candidate with the best validation criterion
// (ValidationScore.Criterion) on the scored validation split items, else
// (no split) the first candidate.
func chooseFusion(ctx context.Context, m *Model, opts Options, s, d []float32, items []valScored) error {
	weights := opts.MapWeights
	if len(weights) == 0 {
		weights = FusionWeights()
		if len(items) == 0 {
			weights = []float32{DefaultMapperWeight}
		}
	}
	cal, err := CalibrateFusion(s, d, weights[0])
	if err != nil {
		return err
	}
	m.Meta.MapFusion = &cal
	m.Meta.CategoryValidation = nil
	if len(items) == 0 {
		return nil
	}
	h0, w0 := gridOf(len(items[0].score))
	enc := opts.Encoder.WithDefaults()
	maskAt := func(g *image.Gray) []bool { return MaskAt(g, enc) }
	fm, err := newFusionMaps(ctx, items, cal, h0, w0, enc.InputSize, maskAt)
	if err != nil {
		return err
	}
	res, err := rateFusions(ctx, items, fm, weights, enc.InputSize)
	if err != nil {
		return err
	}
	m.Meta.Validation = res
	m.Meta.MapperConfidence, m.Meta.CategoryMapperConfidence = 0, nil
	// choose takes the best-rated weight, and keeps a mapper weight only
	// where the split is MapperConfidence sure of it (weights the user
	// fixed are kept as they are).
	choose := func(name string, its []valScored, sub fusionMaps, res []ValidationScore, seed int64) (float32, float64, error) {
		w := bestScore(res).MapperWeight
		if w == 0 || len(opts.MapWeights) > 0 {
			return w, math.NaN(), nil
		}
		conf, err := mapperConfidence(ctx, its, sub, w, enc.InputSize, seed)
		if err != nil {
			return 0, 0, err
		}
		slog.Info("map fusion", "images", name, "best_weight", w, "confidence", conf, "kept", conf >= MapperConfidence)
		if conf < MapperConfidence {
			w = 0
		}
		return w, conf, nil
	}
	w, conf, err := choose("all", items, fm, res, opts.Seed+13)
	if err != nil {
		return err
	}
	if !math.IsNaN(conf) {
		m.Meta.MapperConfidence = conf
	}
	m.Meta.MapFusion = cal.WithWeight(w)
	// Each category whose validation images include real defects (seen
	// anomalies) and clean images gets its own weight, chosen on those
	// images alone. Synthetic defects come from one generator for every
	// category: on them alone the pooled choice, made on more images, is
	// the steadier one.
	byCat := map[string][]int{}
	for i, it := range items {
		byCat[it.category] = append(byCat[it.category], i)
	}
	for ci, cat := range slices.Sorted(maps.Keys(byCat)) {
		idx := byCat[cat]
		its := make([]valScored, len(idx))
		for k, i := range idx {
			its[k] = items[i]
		}
		if !hasSeenDefectAndClean(its) {
			continue
		}
		sub := fm.subset(idx)
		cr, err := rateFusions(ctx, its, sub, weights, enc.InputSize)
		if err != nil {
			return fmt.Errorf("validation of %s: %w", cat, err)
		}
		if m.Meta.CategoryValidation == nil {
			m.Meta.CategoryValidation = map[string][]ValidationScore{}
			m.Meta.MapFusion.CategoryWeights = map[string]float32{}
		}
		m.Meta.CategoryValidation[cat] = cr
		w, conf, err := choose(cat, its, sub, cr, opts.Seed+14+int64(ci))
		if err != nil {
			return fmt.Errorf("validation of %s: %w", cat, err)
		}
		if !math.IsNaN(conf) {
			if m.Meta.CategoryMapperConfidence == nil {
				m.Meta.CategoryMapperConfidence = map[string]float64{}
			}
			m.Meta.CategoryMapperConfidence[cat] = conf
		}
		m.Meta.MapFusion.CategoryWeights[cat] = w
	}
	return nil
}

// hasSeenDefectAndClean reports whether items hold a real defect (a seen
// anomaly) and a clean image.
func hasSeenDefectAndClean(items []valScored) bool {
	var defect, clean bool
	for _, it := range items {
		defect = defect || (it.mask != nil && it.seen)
		clean = clean || it.mask == nil
	}
	return defect && clean
}

// raiseToHeldOut raises each category's threshold (and the global one) to
// the highest image score of the validation split's clean held-out images
// (items without a mask), where that is higher.
func raiseToHeldOut(m *Model, items []valScored) {
	for _, it := range items {
		if it.mask != nil {
			continue
		}
		_, s := heatmap.ImageScore(it.score)
		if t, ok := m.Meta.CategoryThresholds[it.category]; !ok || s > t {
			m.Meta.CategoryThresholds[it.category] = s
		}
		m.Meta.Threshold = max(m.Meta.Threshold, s)
	}
}

// scoreValidation scores the validation split with sc (see validationItems).
func scoreValidation(ctx context.Context, sc *Scorer, set TrainSet) ([]valScored, error) {
	// Each image is searched as a test image of its category is.
	knFor := func(category string) *banks.Knowledge {
		_, kn := sc.routeFor(category)
		return kn
	}
	items, err := validationItems(ctx, knFor, set, sc.m.Meta.Attention)
	if err != nil {
		return nil, err
	}
	return scoreValidationItems(ctx, sc.kn, sc.ms, items)
}

// validationCache is the validation split searched in two banks (see
// Model.validation).
type validationCache struct {
	normal  *banks.NormalBank
	anomaly *banks.AnomalyBank
	items   []valItem
}

// valItem is one image of the validation split with its neighbours in the
// banks: what scoring it with any mapper over those banks needs.
type valItem struct {
	im       Image // features in memory (synthetic defects) or streamed (clean)
	nb       *banks.Neighbours
	mask     *image.Gray // nil for a clean image
	category string
	seen     bool // a seen anomaly (a real defect), not a synthetic one
}

// validationItems searches kn's banks for the validation split: every
// synthetic-defect image and, as clean counterparts, the normal images they
// were made from, all without their own bank entries. Only the neighbours
// are kept (clean images' features are read again when scored).
func validationItems(ctx context.Context, knFor func(category string) *banks.Knowledge, set TrainSet, attention bool) ([]valItem, error) {
	byID := map[int32]Image{}
	for _, im := range set.Normal {
		byID[im.ID] = im
	}
	var items []valItem
	add := func(im Image, mask *image.Gray, seen bool) error {
		f, err := im.features()
		if err != nil {
			return fmt.Errorf("validation: %w", err)
		}
		nb, err := knFor(im.Category).Neighbours(ctx, f, sourceOf(im), attention)
		if err != nil {
			return fmt.Errorf("validation: %w", err)
		}
		items = append(items, valItem{im: im, nb: nb, mask: mask, category: im.Category, seen: seen})
		return nil
	}
	seen := map[int32]bool{}
	for _, im := range set.Validation.Defects {
		if err := add(im, im.Mask, false); err != nil {
			return nil, err
		}
		if seen[im.ID] {
			continue
		}
		seen[im.ID] = true
		clean, ok := byID[im.ID]
		if !ok {
			return nil, fmt.Errorf("validation: image %d is not a normal training image", im.ID)
		}
		if err := add(clean, nil, false); err != nil {
			return nil, err
		}
	}
	// The seen anomalies are real defects, which synthetic ones only
	// imitate: each is scored against the banks without its own entries
	// (leave one image out), so the split also rates maps of defects
	// like those the line produces.
	for _, im := range set.Seen {
		if im.Mask == nil {
			continue
		}
		if err := add(im, im.Mask, true); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// scoreValidationItems scores the validation items with the mapper ms over
// kn's banks.
func scoreValidationItems(ctx context.Context, kn *banks.Knowledge, ms *mapper.BankScorer, items []valItem) ([]valScored, error) {
	out := make([]valScored, len(items))
	for i, it := range items {
		f, err := it.im.features()
		if err != nil {
			return nil, fmt.Errorf("validation: %w", err)
		}
		s, d, err := partsFrom(ctx, kn, ms, f, it.nb)
		if err != nil {
			return nil, fmt.Errorf("validation: %w", err)
		}
		out[i] = valScored{score: s, dist: d, mask: it.mask, category: it.category, seen: it.seen}
	}
	return out, nil
}

func quantile(v []float32, q float64) float32 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float32(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q * float64(len(s)-1))
	return s[i]
}

// rateCheckpoint scores a training checkpoint mm on the validation split
// items (searched once in kn's banks, the model's): the fusion is
// calibrated on the split's clean images and the best candidate weight's
// scores are returned.
func rateCheckpoint(ctx context.Context, rt *ort.Runtime, kn *banks.Knowledge, attention bool, val []valItem, mm *mapper.Model, set TrainSet, opts Options) (ValidationScore, *MapFusion, error) {
	ms, err := mapper.NewBankScorer(rt, mm, kn.Normal.Bank(), kn.Anomaly.Bank(), attention)
	if err != nil {
		return ValidationScore{}, nil, err
	}
	defer ms.Close()
	items, err := scoreValidationItems(ctx, kn, ms, val)
	if err != nil {
		return ValidationScore{}, nil, err
	}
	var s, d []float32
	for _, it := range items {
		if it.mask == nil {
			s, d = append(s, it.score...), append(d, it.dist...)
		}
	}
	weights := opts.MapWeights
	if len(weights) == 0 {
		weights = FusionWeights()
	}
	cal, err := CalibrateFusion(s, d, weights[0])
	if err != nil {
		return ValidationScore{}, nil, err
	}
	h0, w0 := gridOf(patchesOf(set.Normal[0]))
	enc := opts.Encoder.WithDefaults()
	res, err := scoreMaps(ctx, items, cal, weights, h0, w0, enc.InputSize, func(g *image.Gray) []bool { return MaskAt(g, enc) })
	if err != nil {
		return ValidationScore{}, nil, err
	}
	best := bestScore(res)
	return best, cal.WithWeight(best.MapperWeight), nil
}
