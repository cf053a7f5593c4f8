package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AnomalyMap is a small anomaly map kept with an evaluation run: W×H scores
// quantised to uint8 between Min (0) and Max (255).
type AnomalyMap struct {
	W, H     int
	Min, Max float32
	Pix      []uint8
}

// QuantizeMap quantises w×h scores (row-major) to an AnomalyMap over
// [lo, hi]; values outside are clamped. Use the same lo, hi for every image of
// a run so maps compare.
func QuantizeMap(w, h int, scores []float32, lo, hi float32) (*AnomalyMap, error) {
	if len(scores) != w*h {
		return nil, fmt.Errorf("anomaly map %d×%d needs %d scores, got %d", w, h, w*h, len(scores))
	}
	m := &AnomalyMap{W: w, H: h, Min: lo, Max: hi, Pix: make([]uint8, w*h)}
	span := hi - lo
	for i, s := range scores {
		var q float32
		if span > 0 {
			q = (s - lo) / span * 255
		}
		m.Pix[i] = uint8(math.Round(float64(min(max(q, 0), 255))))
	}
	return m, nil
}

// Values returns the dequantised scores.
func (m *AnomalyMap) Values() []float32 {
	out := make([]float32, len(m.Pix))
	for i, q := range m.Pix {
		out[i] = m.Min + float32(q)/255*(m.Max-m.Min)
	}
	return out
}

// map value: w, h (uint32 BE), min, max (float32 bits BE), CRC-32C of pix, pix.
func encodeMap(m *AnomalyMap) ([]byte, error) {
	if len(m.Pix) != m.W*m.H {
		return nil, fmt.Errorf("map %d×%d has %d pixels", m.W, m.H, len(m.Pix))
	}
	v := make([]byte, 20+len(m.Pix))
	binary.BigEndian.PutUint32(v[0:], uint32(m.W))
	binary.BigEndian.PutUint32(v[4:], uint32(m.H))
	binary.BigEndian.PutUint32(v[8:], math.Float32bits(m.Min))
	binary.BigEndian.PutUint32(v[12:], math.Float32bits(m.Max))
	binary.BigEndian.PutUint32(v[16:], crc32.Checksum(m.Pix, castagnoli))
	copy(v[20:], m.Pix)
	return v, nil
}

func decodeMap(v []byte) (*AnomalyMap, error) {
	if len(v) < 20 {
		return nil, errors.New("value too short")
	}
	m := &AnomalyMap{
		W: int(binary.BigEndian.Uint32(v[0:])), H: int(binary.BigEndian.Uint32(v[4:])),
		Min: math.Float32frombits(binary.BigEndian.Uint32(v[8:])), Max: math.Float32frombits(binary.BigEndian.Uint32(v[12:])),
		Pix: bytes.Clone(v[20:]),
	}
	if len(m.Pix) != m.W*m.H {
		return nil, fmt.Errorf("%d pixels for %d×%d", len(m.Pix), m.W, m.H)
	}
	if binary.BigEndian.Uint32(v[16:]) != crc32.Checksum(m.Pix, castagnoli) {
		return nil, errors.New("checksum mismatch")
	}
	return m, nil
}

// ImageResult is one image's outcome in an evaluation run.
type ImageResult struct {
	ImageID  uint64  `json:"image_id,omitempty"` // 0 for images outside the project
	Path     string  `json:"path,omitempty"`
	Category string  `json:"category"`
	Score    float64 `json:"score"`
	Label    int     `json:"label"` // ground truth: LabelNormal or LabelAnomalous, -1 unknown
	// Map, if set, is stored beside the record by SaveRun; records read back
	// leave it nil (load it with RunMap).
	Map *AnomalyMap `json:"-"`
}

// RunRecord is one evaluation (or inspection) run.
type RunRecord struct {
	ID           uint64             `json:"id"`
	ModelVersion int                `json:"model_version"`
	Created      time.Time          `json:"created"`
	Name         string             `json:"name,omitempty"`
	Metrics      map[string]float64 `json:"metrics,omitempty"`
	PerImage     []ImageResult      `json:"per_image"`
}

var keyMaps = []byte("maps")

// SaveRun stores an evaluation run and the anomaly maps of its PerImage
// entries in one transaction; rec.ID 0 takes a new ID (written back).
func (p *Project) SaveRun(rec *RunRecord) error {
	if rec.Created.IsZero() {
		rec.Created = time.Now().UTC()
	}
	err := p.update(func(tx *bolt.Tx) error {
		runs := tx.Bucket(bktRuns)
		if rec.ID == 0 {
			id, err := runs.NextSequence()
			if err != nil {
				return err
			}
			rec.ID = id
		} else if rec.ID > runs.Sequence() {
			if err := runs.SetSequence(rec.ID); err != nil {
				return err
			}
		}
		k := idKey(rec.ID)
		if runs.Bucket(k) != nil {
			if err := runs.DeleteBucket(k); err != nil {
				return err
			}
		}
		rb, err := runs.CreateBucket(k)
		if err != nil {
			return err
		}
		js, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if err := rb.Put(keyRecord, js); err != nil {
			return err
		}
		maps, err := rb.CreateBucket(keyMaps)
		if err != nil {
			return err
		}
		for i, r := range rec.PerImage {
			if r.Map == nil {
				continue
			}
			v, err := encodeMap(r.Map)
			if err != nil {
				return fmt.Errorf("image %d (%s): %w", i, r.Path, err)
			}
			if err := maps.Put(idKey(uint64(i)), v); err != nil {
				return err
			}
		}
		return nil
	}, bktRuns)
	if err != nil {
		return fmt.Errorf("save run %d: %w", rec.ID, err)
	}
	return nil
}

// Run returns a run record (maps not loaded; see RunMap).
func (p *Project) Run(id uint64) (RunRecord, error) {
	var rec RunRecord
	err := p.view(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bktRuns).Bucket(idKey(id))
		if rb == nil {
			return ErrNotFound
		}
		return json.Unmarshal(rb.Get(keyRecord), &rec)
	})
	if err != nil {
		return rec, fmt.Errorf("run %d: %w", id, err)
	}
	return rec, nil
}

// Runs lists every run record in ID order (maps not loaded).
func (p *Project) Runs() ([]RunRecord, error) {
	var out []RunRecord
	err := p.view(func(tx *bolt.Tx) error {
		runs := tx.Bucket(bktRuns)
		return runs.ForEachBucket(func(k []byte) error {
			var rec RunRecord
			if err := json.Unmarshal(runs.Bucket(k).Get(keyRecord), &rec); err != nil {
				return fmt.Errorf("run %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, rec)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// RunMap returns the anomaly map of PerImage[index] of run id (error wraps
// ErrNotFound when that image has none).
func (p *Project) RunMap(id uint64, index int) (*AnomalyMap, error) {
	var m *AnomalyMap
	err := p.view(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bktRuns).Bucket(idKey(id))
		if rb == nil {
			return ErrNotFound
		}
		v := rb.Bucket(keyMaps).Get(idKey(uint64(index)))
		if v == nil {
			return ErrNotFound
		}
		var err error
		m, err = decodeMap(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("run %d map %d: %w", id, index, err)
	}
	return m, nil
}

// DeleteRun removes a run and its maps.
func (p *Project) DeleteRun(id uint64) error {
	err := p.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bktRuns).Bucket(idKey(id)) == nil {
			return ErrNotFound
		}
		return tx.Bucket(bktRuns).DeleteBucket(idKey(id))
	}, bktRuns)
	if err != nil {
		return fmt.Errorf("delete run %d: %w", id, err)
	}
	return nil
}
