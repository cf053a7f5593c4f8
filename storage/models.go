package storage

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Common model part names (any name is allowed).
const (
	PartNormalBank  = "normal_bank"
	PartAnomalyBank = "anomaly_bank"
	PartMapper      = "mapper"
)

// ModelRecord describes one trained model version. Its parts (banks, mapper
// weights, …) are blobs stored with it in the same transaction.
type ModelRecord struct {
	Version    int                `json:"version"`
	Created    time.Time          `json:"created"`
	BackboneID string             `json:"backbone_id"`
	Config     json.RawMessage    `json:"config,omitempty"`
	Metrics    map[string]float64 `json:"metrics,omitempty"`
	Thresholds map[string]float64 `json:"thresholds,omitempty"`
	Notes      string             `json:"notes,omitempty"`
	// Origin says where an imported model came from ("" for models trained here).
	Origin string `json:"origin,omitempty"`
	// Parts are filled by SaveModel and ImportModel.
	Parts []BlobInfo `json:"parts"`
	// Active is set on records returned by the project when this version is
	// the active one; passing Active to SaveModel makes the new model active.
	Active bool `json:"-"`
}

var (
	keyRecord = []byte("record")
	keyParts  = []byte("parts")
)

func versionKey(v int) []byte { return idKey(uint64(v)) }

// SaveModel stores a model record and all its parts in ONE transaction: after
// a crash either the whole model is there or none of it. rec.Version 0 takes
// the next free version (written back to rec); an existing version is refused.
// Parts are written in name order, each streamed chunk by chunk.
func (p *Project) SaveModel(ctx context.Context, rec *ModelRecord, parts map[string]io.Reader) error {
	err := p.update(func(tx *bolt.Tx) error { return saveModelTx(ctx, tx, rec, parts, p.chunkSize()) }, bktModels)
	if err != nil {
		return fmt.Errorf("save model %d: %w", rec.Version, err)
	}
	return nil
}

func saveModelTx(ctx context.Context, tx *bolt.Tx, rec *ModelRecord, parts map[string]io.Reader, chunk int) error {
	models := tx.Bucket(bktModels)
	if rec.Version == 0 {
		seq, err := models.NextSequence()
		if err != nil {
			return err
		}
		rec.Version = int(seq)
	} else {
		if models.Bucket(versionKey(rec.Version)) != nil {
			return fmt.Errorf("version %d already exists", rec.Version)
		}
		if uint64(rec.Version) > models.Sequence() {
			if err := models.SetSequence(uint64(rec.Version)); err != nil {
				return err
			}
		}
	}
	if rec.Created.IsZero() {
		rec.Created = time.Now().UTC()
	}
	mb, err := models.CreateBucket(versionKey(rec.Version))
	if err != nil {
		return err
	}
	pb, err := mb.CreateBucket(keyParts)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(parts))
	for name := range parts {
		names = append(names, name)
	}
	slices.Sort(names)
	rec.Parts = rec.Parts[:0]
	for _, name := range names {
		if name == "" {
			return fmt.Errorf("empty part name")
		}
		info, err := writeBlob(ctx, pb, []byte(name), modelPartName(rec.Version, name), parts[name], chunk)
		if err != nil {
			return err
		}
		info.Name = name
		rec.Parts = append(rec.Parts, info)
	}
	js, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := mb.Put(keyRecord, js); err != nil {
		return err
	}
	if rec.Active {
		return tx.Bucket(bktMeta).Put(keyActive, []byte(strconv.Itoa(rec.Version)))
	}
	return nil
}

func modelPartName(version int, part string) string {
	return "models/" + strconv.Itoa(version) + "/" + part
}

func activeVersion(tx *bolt.Tx) int {
	v, _ := strconv.Atoi(string(tx.Bucket(bktMeta).Get(keyActive)))
	return v
}

func readModelTx(tx *bolt.Tx, version int) (ModelRecord, error) {
	var rec ModelRecord
	mb := tx.Bucket(bktModels).Bucket(versionKey(version))
	if mb == nil {
		return rec, ErrNotFound
	}
	js := mb.Get(keyRecord)
	if js == nil {
		return rec, fmt.Errorf("record missing (incomplete model)")
	}
	if err := json.Unmarshal(js, &rec); err != nil {
		return rec, fmt.Errorf("record damaged: %w", err)
	}
	rec.Active = activeVersion(tx) == version
	return rec, nil
}

// Model returns the record of a model version (error wraps ErrNotFound).
func (p *Project) Model(version int) (ModelRecord, error) {
	var rec ModelRecord
	err := p.view(func(tx *bolt.Tx) (err error) { rec, err = readModelTx(tx, version); return err })
	if err != nil {
		return rec, fmt.Errorf("model %d: %w", version, err)
	}
	return rec, nil
}

// Models lists every model record in version order.
func (p *Project) Models() ([]ModelRecord, error) {
	var out []ModelRecord
	err := p.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktModels).ForEachBucket(func(k []byte) error {
			v := int(binary.BigEndian.Uint64(k))
			rec, err := readModelTx(tx, v)
			if err != nil {
				return fmt.Errorf("model %d: %w", v, err)
			}
			out = append(out, rec)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	return out, nil
}

// ActiveModel returns the active model's record (error wraps ErrNotFound
// when none is active).
func (p *Project) ActiveModel() (ModelRecord, error) {
	var rec ModelRecord
	err := p.view(func(tx *bolt.Tx) error {
		v := activeVersion(tx)
		if v == 0 {
			return fmt.Errorf("no active model: %w", ErrNotFound)
		}
		var err error
		rec, err = readModelTx(tx, v)
		if err != nil {
			return fmt.Errorf("active model %d: %w", v, err)
		}
		return nil
	})
	return rec, err
}

// SetActiveModel marks a stored version as the active one after checking
// that all its parts are present.
func (p *Project) SetActiveModel(version int) error {
	err := p.update(func(tx *bolt.Tx) error {
		rec, err := readModelTx(tx, version)
		if err != nil {
			return err
		}
		pb := tx.Bucket(bktModels).Bucket(versionKey(version)).Bucket(keyParts)
		for _, part := range rec.Parts {
			b := pb.Bucket([]byte(part.Name))
			if b == nil {
				return fmt.Errorf("part %s missing", part.Name)
			}
			if _, err := readBlobHeader(b, modelPartName(version, part.Name)); err != nil {
				return err
			}
		}
		return tx.Bucket(bktMeta).Put(keyActive, []byte(strconv.Itoa(version)))
	}, bktModels)
	if err != nil {
		return fmt.Errorf("activate model %d: %w", version, err)
	}
	return nil
}

// OpenModelPart streams one part of a model version.
func (p *Project) OpenModelPart(version int, part string) (*BlobReader, error) {
	path := [][]byte{bktModels, versionKey(version), keyParts, []byte(part)}
	br, err := openBlob(p, path, modelPartName(version, part))
	if err != nil {
		return nil, err
	}
	br.h.Name = part
	return br, nil
}

// VerifyModel checks that a model version's record is readable and that every
// part listed in it is present with valid checksums; the error names the
// first damaged part and chunk.
func (p *Project) VerifyModel(version int) error {
	err := p.view(func(tx *bolt.Tx) error {
		rec, err := readModelTx(tx, version)
		if err != nil {
			return err
		}
		pb := tx.Bucket(bktModels).Bucket(versionKey(version)).Bucket(keyParts)
		for _, part := range rec.Parts {
			name := modelPartName(version, part.Name)
			b := pb.Bucket([]byte(part.Name))
			if b == nil {
				return fmt.Errorf("blob %s: missing", name)
			}
			info, err := verifyBlobInTx(b, name)
			if err != nil {
				return err
			}
			if info.SHA256 != part.SHA256 || info.Size != part.Size {
				return fmt.Errorf("blob %s: does not match the model record", name)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify model %d: %w", version, err)
	}
	return nil
}

// DeleteModel removes a model version, its parts and its training log; if it
// was active, no model is active afterwards.
func (p *Project) DeleteModel(version int) error {
	err := p.update(func(tx *bolt.Tx) error {
		k := versionKey(version)
		if tx.Bucket(bktModels).Bucket(k) == nil {
			return ErrNotFound
		}
		if err := tx.Bucket(bktModels).DeleteBucket(k); err != nil {
			return err
		}
		if tx.Bucket(bktTrainLogs).Bucket(k) != nil {
			if err := tx.Bucket(bktTrainLogs).DeleteBucket(k); err != nil {
				return err
			}
		}
		if activeVersion(tx) == version {
			return tx.Bucket(bktMeta).Delete(keyActive)
		}
		return nil
	}, bktModels, bktTrainLogs)
	if err != nil {
		return fmt.Errorf("delete model %d: %w", version, err)
	}
	return nil
}

// AppendTrainingLog appends events (each marshalled to one JSON object) to
// the training log of a model version. The version need not be saved yet:
// training logs as it goes and saves the model at the end.
func (p *Project) AppendTrainingLog(version int, events ...any) error {
	lines := make([][]byte, len(events))
	for i, e := range events {
		js, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("training log %d: event %d: %w", version, i, err)
		}
		lines[i] = js
	}
	err := p.update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bktTrainLogs).CreateBucketIfNotExists(versionKey(version))
		if err != nil {
			return err
		}
		for _, js := range lines {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(idKey(seq), js); err != nil {
				return err
			}
		}
		return nil
	}, bktTrainLogs)
	if err != nil {
		return fmt.Errorf("training log %d: %w", version, err)
	}
	return nil
}

// TrainingLog returns the events of a model version's training log in order.
func (p *Project) TrainingLog(version int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := p.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktTrainLogs).Bucket(versionKey(version))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			out = append(out, json.RawMessage(slices.Clone(v)))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("training log %d: %w", version, err)
	}
	return out, nil
}

// WriteTrainingLog writes a model version's training log to w as JSON lines.
func (p *Project) WriteTrainingLog(version int, w io.Writer) error {
	events, err := p.TrainingLog(version)
	if err != nil {
		return err
	}
	for _, e := range events {
		if _, err := w.Write(append(e, '\n')); err != nil {
			return fmt.Errorf("write training log %d: %w", version, err)
		}
	}
	return nil
}
