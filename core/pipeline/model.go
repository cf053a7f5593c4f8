// Package pipeline runs DMAD end to end: it encodes images into patch
// features (with a cache), builds the dual memory banks, computes knowledge,
// trains the score mapper, and scores images into image scores and anomaly
// maps. The CLI, the benchmark and the GUI all drive the engine through it.
package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/mapper"
)

// Method selects the scorer.
type Method string

// The scorers: DMAD (dual banks + learned mapper) and the PatchCore baseline
// (distance to the normal bank).
const (
	DMAD      Method = "dmad"
	PatchCore Method = "patchcore"
)

// ParseMethod checks a --method value.
func ParseMethod(s string) (Method, error) {
	switch Method(s) {
	case DMAD, PatchCore:
		return Method(s), nil
	}
	return "", fmt.Errorf("unknown method %q (want dmad or patchcore)", s)
}

// Regime names how a model was trained.
const (
	Unsupervised = "unsupervised"
	Semi         = "semi"
)

// Meta describes a trained model: everything needed, beside the banks and
// the mapper, to score new images the way the model was trained.
type Meta struct {
	Method     Method         `json:"method"`
	Regime     string         `json:"regime"`
	EncoderID  string         `json:"encoder_id"`
	Card       *encoder.Card  `json:"card"`
	Encoder    encoder.Config `json:"encoder"`
	Attention  bool           `json:"attention"`
	Categories []string       `json:"categories"`
	// Threshold is the image-score decision threshold: a high quantile of
	// the scores of normal training images scored without their own bank
	// entries (see Fit).
	Threshold float32 `json:"threshold"`
	// CategoryThresholds are per-category thresholds, same rule.
	CategoryThresholds map[string]float32 `json:"category_thresholds,omitempty"`
	// MapRange is the range of anomaly-map values seen on normal training
	// images (for colouring heatmaps consistently).
	MapLo float32 `json:"map_lo"`
	MapHi float32 `json:"map_hi"`
	// NormalBankKey identifies what the normal bank was built from (encoder,
	// normal images, coreset settings), so a retraining with the same
	// normal images can reuse it (see core/project).
	NormalBankKey string `json:"normal_bank_key,omitempty"`
	// MapFusion makes DMAD's anomaly maps from the mapper's scores and the
	// nearest-neighbour distances (nil: the mapper's scores, as models
	// trained before it had).
	MapFusion *MapFusion `json:"map_fusion,omitempty"`
	// Validation records how the candidates did on the validation split
	// (synthetic defects on held-out normal training images, and the seen
	// anomalies scored without their own bank entries).
	Validation []ValidationScore `json:"validation,omitempty"`
	// CategoryValidation is the same per category, on that category's
	// images of the split (see MapFusion.CategoryWeights).
	CategoryValidation map[string][]ValidationScore `json:"category_validation,omitempty"`
	// MapperConfidence is the share of bootstrap resamples of the
	// validation split in which the best-rated mapper weight's maps beat
	// the distance's (see pipeline.MapperConfidence; 0 where the best
	// weight was 0 and nothing was tested); CategoryMapperConfidence is
	// the same for the categories with their own weight.
	MapperConfidence         float64            `json:"mapper_confidence,omitempty"`
	CategoryMapperConfidence map[string]float64 `json:"category_mapper_confidence,omitempty"`
	// Checkpoints are the training checkpoints' ratings on the validation
	// split (best fusion weight of each); Epochs is the epoch of the
	// mapper kept.
	Checkpoints []ValidationScore `json:"checkpoints,omitempty"`
	Epochs      int               `json:"epochs,omitempty"`
	// RefitSteps counts the fine-tuning steps of the refits since the
	// mapper's first training (see Options.Start).
	RefitSteps int `json:"refit_steps,omitempty"`
	// CategoryImages lists the training images (the ids bank entries
	// remember as their source) of each category the fast search may route
	// to its part of the banks: those whose normal-bank entries have their
	// nearest neighbour within the category (CategoryAgreement ≥
	// RouteAgreement).
	CategoryImages map[string][]int32 `json:"category_images,omitempty"`
	// CategoryAgreement is, per category, the share of its normal-bank
	// entries whose nearest entry of another image is of the same category.
	CategoryAgreement map[string]float64 `json:"category_agreement,omitempty"`
	// SeenImages is the number of seen anomalies used.
	SeenImages int `json:"seen_images"`
	// WeakImages is the number of weakly labelled anomalies (defective,
	// no mask) used; WeakPatches the patches taken from them as seen
	// anomalies in the last round.
	WeakImages   int     `json:"weak_images,omitempty"`
	WeakPatches  int     `json:"weak_patches,omitempty"`
	TrainSeconds float64 `json:"train_seconds"`
	// NormalBankSeconds is the part of TrainSeconds spent building the
	// normal bank (0 when it was reused).
	NormalBankSeconds float64 `json:"normal_bank_seconds,omitempty"`
}

// Model is a trained scorer: metadata, the normal bank, and for DMAD the
// anomaly bank and the mapper.
type Model struct {
	Meta    Meta
	Normal  *banks.NormalBank
	Anomaly *banks.AnomalyBank // nil for PatchCore
	Mapper  *mapper.Model      // nil for PatchCore

	// validation holds the validation split's neighbours from the fit,
	// while the banks they were searched in are the model's (see
	// setThreshold).
	validation *validationCache
}

// Part names of a model's stored pieces (storage keeps one blob each).
const (
	PartMeta        = "meta"
	PartNormalBank  = "normal_bank"
	PartAnomalyBank = "anomaly_bank"
	PartMapper      = "mapper"
)

// Parts returns readers over the model's serialised pieces, for
// storage.SaveModel.
func (m *Model) Parts() (map[string]io.Reader, error) {
	meta, err := json.Marshal(m.Meta)
	if err != nil {
		return nil, fmt.Errorf("encode model meta: %w", err)
	}
	parts := map[string]io.Reader{PartMeta: bytes.NewReader(meta)}
	var nb bytes.Buffer
	if _, err := m.Normal.WriteTo(&nb); err != nil {
		return nil, fmt.Errorf("encode normal bank: %w", err)
	}
	parts[PartNormalBank] = &nb
	if m.Anomaly != nil {
		var ab bytes.Buffer
		if _, err := m.Anomaly.WriteTo(&ab); err != nil {
			return nil, fmt.Errorf("encode anomaly bank: %w", err)
		}
		parts[PartAnomalyBank] = &ab
	}
	if m.Mapper != nil {
		b, err := m.Mapper.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode mapper: %w", err)
		}
		parts[PartMapper] = bytes.NewReader(b)
	}
	return parts, nil
}

// LoadModel reads a model back from its parts; open returns a reader for a
// part name or an error (a missing optional part must return an error that
// LoadModel can tell apart: it treats the anomaly bank and mapper as
// required only for DMAD).
func LoadModel(open func(part string) (io.ReadCloser, error)) (*Model, error) {
	read := func(part string) ([]byte, error) {
		r, err := open(part)
		if err != nil {
			return nil, fmt.Errorf("model part %s: %w", part, err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("model part %s: %w", part, err)
		}
		return b, nil
	}
	m := &Model{}
	b, err := read(PartMeta)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &m.Meta); err != nil {
		return nil, fmt.Errorf("model meta: %w", err)
	}
	if b, err = read(PartNormalBank); err != nil {
		return nil, err
	}
	m.Normal = &banks.NormalBank{}
	if err := m.Normal.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("model normal bank: %w", err)
	}
	if m.Meta.Method == DMAD {
		if b, err = read(PartAnomalyBank); err != nil {
			return nil, err
		}
		m.Anomaly = &banks.AnomalyBank{}
		if err := m.Anomaly.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("model anomaly bank: %w", err)
		}
		if b, err = read(PartMapper); err != nil {
			return nil, err
		}
		m.Mapper = &mapper.Model{}
		if err := m.Mapper.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("model mapper: %w", err)
		}
	}
	return m, nil
}
