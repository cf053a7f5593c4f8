package banks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"

	"github.com/dmad/workstation/core/mat"
)

// NormalBank is the normal memory bank M_n (METHOD.md §2): a coreset of the
// patch features of all normal training images of all categories.
type NormalBank struct {
	// Features holds one bank entry per row.
	Features *mat.Matrix
	// Source is the image id each entry came from (same-image exclusion).
	Source []int32
	// Category is each entry's category id; optional (nil), set by callers
	// that track categories.
	Category []int32
	// Backbone identifies the feature extractor the entries came from.
	Backbone string
}

// Len is the number of entries.
func (b *NormalBank) Len() int { return b.Features.Rows() }

// Validate checks that the arrays agree with the feature matrix.
func (b *NormalBank) Validate() error {
	if b.Features == nil {
		return errors.New("normal bank: no feature matrix")
	}
	if len(b.Source) != b.Features.Rows() {
		return fmt.Errorf("normal bank: %d source ids for %d entries", len(b.Source), b.Features.Rows())
	}
	if b.Category != nil && len(b.Category) != b.Features.Rows() {
		return fmt.Errorf("normal bank: %d category ids for %d entries", len(b.Category), b.Features.Rows())
	}
	return nil
}

// BuildNormalBankFrom builds M_n from the concatenated normal patch
// features of every training image (source[i] is row i's image id) by
// greedy coreset sampling of ratio of the rows (reference 0.02; at least
// one; ratio ≥ 1 keeps everything). feats is only read; the bank owns a
// copy of the selected rows, so feats can be dropped afterwards. Entries
// are in coreset selection order.
func BuildNormalBankFrom(ctx context.Context, feats *mat.Matrix, source []int32, ratio float64, opts CoresetOptions) (*NormalBank, error) {
	if feats == nil || feats.Rows() == 0 {
		return nil, errors.New("build normal bank: no features")
	}
	if len(source) != feats.Rows() {
		return nil, fmt.Errorf("build normal bank: %d source ids for %d patches", len(source), feats.Rows())
	}
	if !(ratio > 0) {
		return nil, fmt.Errorf("build normal bank: coreset ratio %v must be positive", ratio)
	}
	n := max(1, int(ratio*float64(feats.Rows())))
	idx, err := Coreset(ctx, feats, n, opts)
	if err != nil {
		return nil, fmt.Errorf("build normal bank from %d patches: %w", feats.Rows(), err)
	}
	b := &NormalBank{Features: feats.Gather(idx), Source: make([]int32, len(idx))}
	for i, r := range idx {
		b.Source[i] = source[r]
	}
	return b, nil
}

// BuildNormalBank is BuildNormalBankFrom over per-image feature matrices
// (imageIDs[i] is perImage[i]'s id). It concatenates them first, which
// briefly doubles their memory: callers holding ~1,000 images (~2.3 GB)
// should concatenate into one matrix as they encode and call
// BuildNormalBankFrom.
func BuildNormalBank(ctx context.Context, perImage []*mat.Matrix, imageIDs []int32, ratio float64, opts CoresetOptions) (*NormalBank, error) {
	if len(perImage) != len(imageIDs) {
		return nil, fmt.Errorf("build normal bank: %d images, %d ids", len(perImage), len(imageIDs))
	}
	all, err := mat.Append(perImage...)
	if err != nil {
		return nil, fmt.Errorf("build normal bank: %w", err)
	}
	source := make([]int32, 0, all.Rows())
	for i, m := range perImage {
		if m == nil {
			continue
		}
		for range m.Rows() {
			source = append(source, imageIDs[i])
		}
	}
	return BuildNormalBankFrom(ctx, all, source, ratio, opts)
}

// Kinds of anomaly bank entries.
const (
	KindPseudo  uint8 = 1 // a normal patch plus Gaussian noise (M_p, unsupervised)
	KindOOD     uint8 = 2 // an out-of-distribution patch (M_o: synthetic textures/defects)
	KindSeen    uint8 = 3 // a filtered patch of a seen, annotated anomaly (M_as)
	KindCentred uint8 = 4 // anomaly-centred sample: mean of M_as plus noise (M_p, semi-supervised)
)

// KindName names an anomaly entry kind.
func KindName(k uint8) string {
	switch k {
	case KindPseudo:
		return "pseudo"
	case KindOOD:
		return "ood"
	case KindSeen:
		return "seen"
	case KindCentred:
		return "centred"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// NoSource marks anomaly bank entries not derived from a known image.
const NoSource int32 = -1

// AnomalyBank is the anomaly memory bank M_a (METHOD.md §2).
type AnomalyBank struct {
	// Features holds one bank entry per row.
	Features *mat.Matrix
	// Kind is each entry's origin (KindPseudo, KindOOD, KindSeen, KindCentred).
	Kind []uint8
	// Source is the image id an entry was derived from (pseudo entries from
	// a normal image, seen entries from an annotated image) or NoSource. It
	// lets training patches skip entries made from their own image, as for
	// the normal bank: a pseudo entry is its own source patch plus noise.
	// Optional: nil means no entry has a source.
	Source []int32
	// Backbone identifies the feature extractor the entries came from.
	Backbone string
}

// Len is the number of entries.
func (b *AnomalyBank) Len() int { return b.Features.Rows() }

// Count returns the number of entries of kind k.
func (b *AnomalyBank) Count(k uint8) int {
	n := 0
	for _, v := range b.Kind {
		if v == k {
			n++
		}
	}
	return n
}

// Validate checks that the arrays agree with the feature matrix.
func (b *AnomalyBank) Validate() error {
	if b.Features == nil {
		return errors.New("anomaly bank: no feature matrix")
	}
	if len(b.Kind) != b.Features.Rows() || (b.Source != nil && len(b.Source) != b.Features.Rows()) {
		return fmt.Errorf("anomaly bank: %d kinds and %d source ids for %d entries", len(b.Kind), len(b.Source), b.Features.Rows())
	}
	return nil
}

// AnomalyInputs are the ingredients of the anomaly bank.
//
// Noise scales are relative (METHOD.md §7: feature scale matters): both
// PseudoStd and CentredStd multiply the per-dimension standard deviation
// σ_d of the Normal rows ([FeatureStd]; of the Seen rows when Normal has
// fewer than two rows), so noise in dimension d is N(0, (std·σ_d)²) whatever
// the backbone's feature scale. For orientation: the expected noise norm is
// std·√(Σσ_d²), and Σσ_d² is the mean squared distance of a normal patch to
// the normal mean, several times the squared nearest-neighbour distance.
type AnomalyInputs struct {
	// Normal holds sampled normal patches: the source of pseudo-anomalies
	// and the reference scale.
	Normal *mat.Matrix
	// NormalSource is each Normal row's image id (optional).
	NormalSource []int32
	// PseudoCount is the number of pseudo-anomalies; 0 means Normal.Rows().
	// Rows are drawn without replacement when PseudoCount ≤ Normal.Rows().
	PseudoCount int
	// PseudoStd is the pseudo-anomaly noise relative to σ_d; 0 means 0.3.
	PseudoStd float32
	// OOD holds out-of-distribution patches (synthetic textures/defects).
	OOD *mat.Matrix
	// Seen holds the filtered patches of seen anomalies; non-empty selects
	// the semi-supervised composition.
	Seen *mat.Matrix
	// SeenSource is each Seen row's image id (optional).
	SeenSource []int32
	// CentredStd is the anomaly-centred sampling noise relative to σ_d;
	// 0 means 0.1 (the paper's σ² = 0.01 on its feature scale).
	CentredStd float32
	// PseudoInSemi keeps the normal-plus-noise pseudo-anomalies in the
	// semi-supervised bank too (an ablation; METHOD.md leaves them out).
	PseudoInSemi bool
	// Seed seeds the sampling and the noise.
	Seed int64
	// Backbone is recorded in the bank.
	Backbone string
}

// BuildAnomalyBank composes M_a as METHOD.md §2 specifies:
//
//   - unsupervised (no Seen rows): M_a = M_p ∪ M_o, M_p = Normal rows plus
//     N(0, (PseudoStd·σ_d)²) noise (KindPseudo), M_o = OOD (KindOOD);
//   - semi-supervised: M_a = M_o ∪ M_as ∪ M_p, M_as = Seen (KindSeen) and
//     M_p = anomaly-centred sampling: the mean of the Seen rows (k-means with
//     K = 1) plus N(0, (CentredStd·σ_d)²) noise, |Seen| of them
//     (KindCentred). The unsupervised pseudo-anomalies join only with
//     PseudoInSemi.
//
// Entries come in the order pseudo, OOD, seen, centred.
func BuildAnomalyBank(ctx context.Context, in AnomalyInputs) (*AnomalyBank, error) {
	cols, err := in.check()
	if err != nil {
		return nil, err
	}
	in = in.withDefaults()
	semi := in.Seen != nil && in.Seen.Rows() > 0
	ab := &anomalyBuilder{
		b:     &AnomalyBank{Features: mat.WithCapacity(0, cols), Backbone: in.Backbone},
		rng:   rand.New(rand.NewSource(in.Seed)),
		row:   make([]float32, cols),
		scale: in.noiseScale(semi),
	}
	// The order of the steps fixes the random stream: pseudo, OOD, seen, centred.
	if !semi || in.PseudoInSemi {
		if err := ab.addPseudo(ctx, in); err != nil {
			return nil, err
		}
	}
	if in.OOD != nil {
		for r := range in.OOD.Rows() {
			ab.add(in.OOD.Row(r), KindOOD, NoSource)
		}
	}
	if semi {
		if err := ab.addSeen(in); err != nil {
			return nil, err
		}
	}
	if ab.b.Features.Rows() == 0 {
		return nil, errors.New("build anomaly bank: no entries (no normal rows for pseudo-anomalies, no OOD, no seen anomalies)")
	}
	return ab.b, nil
}

func (in AnomalyInputs) withDefaults() AnomalyInputs {
	if in.PseudoStd == 0 {
		in.PseudoStd = 0.3
	}
	if in.CentredStd == 0 {
		in.CentredStd = 0.1
	}
	return in
}

// noiseScale is σ_d, the per-dimension scale of the bank's noise: that of
// the normal rows, or of the seen rows when there are too few normal ones
// (nil when neither has two rows).
func (in AnomalyInputs) noiseScale(semi bool) []float32 {
	switch {
	case in.Normal != nil && in.Normal.Rows() >= 2:
		return FeatureStd(in.Normal)
	case semi && in.Seen.Rows() >= 2:
		return FeatureStd(in.Seen)
	}
	return nil
}

// check validates the inputs' shapes and returns their common width.
func (in AnomalyInputs) check() (cols int, err error) {
	cols = -1
	for _, m := range []*mat.Matrix{in.Normal, in.OOD, in.Seen} {
		if m == nil || m.Rows() == 0 {
			continue
		}
		if cols >= 0 && m.Cols() != cols {
			return 0, fmt.Errorf("build anomaly bank: inputs have %d and %d columns", cols, m.Cols())
		}
		cols = m.Cols()
	}
	if cols < 0 {
		return 0, errors.New("build anomaly bank: no inputs")
	}
	if in.NormalSource != nil && (in.Normal == nil || len(in.NormalSource) != in.Normal.Rows()) {
		return 0, fmt.Errorf("build anomaly bank: %d normal source ids for the normal rows", len(in.NormalSource))
	}
	if in.SeenSource != nil && (in.Seen == nil || len(in.SeenSource) != in.Seen.Rows()) {
		return 0, fmt.Errorf("build anomaly bank: %d seen source ids for the seen rows", len(in.SeenSource))
	}
	return cols, nil
}

// anomalyBuilder grows an anomaly bank entry by entry.
type anomalyBuilder struct {
	b     *AnomalyBank
	rng   *rand.Rand
	scale []float32 // σ_d per dimension, the noise scale
	row   []float32 // scratch row
}

func (ab *anomalyBuilder) add(row []float32, kind uint8, src int32) {
	ab.b.Features.AppendRow(row)
	ab.b.Kind = append(ab.b.Kind, kind)
	ab.b.Source = append(ab.b.Source, src)
}

// noisy writes base plus N(0, (std·σ_d)²) noise into ab.row.
func (ab *anomalyBuilder) noisy(base []float32, std float32) []float32 {
	for d := range ab.row {
		ab.row[d] = base[d] + std*ab.scale[d]*float32(ab.rng.NormFloat64())
	}
	return ab.row
}

// addPseudo adds M_p of the unsupervised regime: normal rows plus noise.
func (ab *anomalyBuilder) addPseudo(ctx context.Context, in AnomalyInputs) error {
	if in.Normal == nil || in.Normal.Rows() < 2 {
		return errors.New("build anomaly bank: pseudo-anomalies need at least two normal rows")
	}
	count := in.PseudoCount
	if count <= 0 {
		count = in.Normal.Rows()
	}
	var pick []int
	if count <= in.Normal.Rows() {
		pick = ab.rng.Perm(in.Normal.Rows())[:count]
	} else {
		pick = make([]int, count)
		for i := range pick {
			pick[i] = ab.rng.Intn(in.Normal.Rows())
		}
	}
	for i, r := range pick {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("build anomaly bank: %w", err)
			}
		}
		src := NoSource
		if in.NormalSource != nil {
			src = in.NormalSource[r]
		}
		ab.add(ab.noisy(in.Normal.Row(r), in.PseudoStd), KindPseudo, src)
	}
	return nil
}

// addSeen adds M_as (the seen rows) and the anomaly-centred samples around
// their mean.
func (ab *anomalyBuilder) addSeen(in AnomalyInputs) error {
	if ab.scale == nil {
		return errors.New("build anomaly bank: anomaly-centred sampling needs at least two normal or seen rows for its scale")
	}
	mean := make([]float64, in.Seen.Cols())
	for r := range in.Seen.Rows() {
		src := NoSource
		if in.SeenSource != nil {
			src = in.SeenSource[r]
		}
		ab.add(in.Seen.Row(r), KindSeen, src)
		for d, v := range in.Seen.Row(r) {
			mean[d] += float64(v)
		}
	}
	centre := make([]float32, len(mean))
	for d := range mean {
		centre[d] = float32(mean[d] / float64(in.Seen.Rows()))
	}
	for range in.Seen.Rows() {
		ab.add(ab.noisy(centre, in.CentredStd), KindCentred, NoSource)
	}
	return nil
}

// FeatureStd returns the per-dimension standard deviation of m's rows
// (population, computed in float64). It is the reference scale of the
// anomaly bank's noise and can serve the trainer's pseudo negatives.
func FeatureStd(m *mat.Matrix) []float32 {
	mean := make([]float64, m.Cols())
	sq := make([]float64, m.Cols())
	for r := range m.Rows() {
		for d, v := range m.Row(r) {
			mean[d] += float64(v)
			sq[d] += float64(v) * float64(v)
		}
	}
	out := make([]float32, m.Cols())
	n := float64(m.Rows())
	for d := range out {
		mu := mean[d] / n
		out[d] = float32(math.Sqrt(max(0, sq[d]/n-mu*mu)))
	}
	return out
}
