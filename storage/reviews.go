package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Reviews are a reviewer's decisions on a model version's verdicts: per
// image, whether the reviewer accepted or rejected what the model decided.
// They live in a bucket nested in the model version's own bucket
// (models/<version>/reviews), so they need no schema migration, are
// counted by the manifest like every key under models, go when their model
// is deleted and are copied by Salvage. Each value is a CRC-32C (4 bytes,
// big-endian) followed by the review's JSON, like masks: a damaged value is
// reported by name instead of being read as a different decision.
var keyReviews = []byte("reviews")

// Review is one reviewer decision on one image's verdict under one model
// version.
type Review struct {
	// Image names the image: ImageKey of its project id, or its file path
	// for images outside the project (an inspection batch).
	Image string `json:"image"`
	// ModelVerdict is what the model decided when the reviewer looked:
	// "pass" or "fail".
	ModelVerdict string `json:"model_verdict"`
	// Accepted is true when the reviewer agreed with ModelVerdict; false
	// means the reviewer overrode it (the final verdict is the other one).
	Accepted bool `json:"accepted"`
	// Score and Threshold are the image score and the threshold in force
	// when the decision was made.
	Score     float64 `json:"score"`
	Threshold float64 `json:"threshold"`
	// Who is the reviewer (the OS user name); When is when, in UTC.
	Who  string    `json:"who"`
	When time.Time `json:"when"`
	// Note is optional free text.
	Note string `json:"note,omitempty"`
}

// Verdicts a review refers to.
const (
	VerdictPass = "pass"
	VerdictFail = "fail"
)

// FinalVerdict is the verdict after review: ModelVerdict when accepted,
// the other one when rejected.
func (r Review) FinalVerdict() string {
	if r.Accepted {
		return r.ModelVerdict
	}
	if r.ModelVerdict == VerdictFail {
		return VerdictPass
	}
	return VerdictFail
}

// ImageKey is the review key of a project image id.
func ImageKey(id uint64) string { return fmt.Sprintf("id:%d", id) }

func (r Review) validate() error {
	switch {
	case r.Image == "":
		return errors.New("review names no image")
	case len(r.Image) > bolt.MaxKeySize:
		return fmt.Errorf("review image key of %d bytes is too long", len(r.Image))
	case r.ModelVerdict != VerdictPass && r.ModelVerdict != VerdictFail:
		return fmt.Errorf("review of %s: model verdict %q (want %q or %q)", r.Image, r.ModelVerdict, VerdictPass, VerdictFail)
	}
	return nil
}

func encodeReview(r Review) ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	v := make([]byte, 4+len(js))
	binary.BigEndian.PutUint32(v, crc32.Checksum(js, castagnoli))
	copy(v[4:], js)
	return v, nil
}

// decodeReview checks and decodes one stored value; where names it in errors.
func decodeReview(v []byte, where string) (Review, error) {
	var r Review
	if len(v) < 4 || binary.BigEndian.Uint32(v[:4]) != crc32.Checksum(v[4:], castagnoli) {
		return r, fmt.Errorf("%s: checksum mismatch: %w; %s", where, ErrDamaged, damagedHint)
	}
	if err := json.Unmarshal(v[4:], &r); err != nil {
		return r, fmt.Errorf("%s: unreadable (%v): %w; %s", where, err, ErrDamaged, damagedHint)
	}
	return r, nil
}

func reviewWhere(version int, image string) string {
	return fmt.Sprintf("review of %s for model %d", image, version)
}

// PutReview stores (or replaces) the review of r.Image under a model
// version. When is set to now when zero.
func (p *Project) PutReview(version int, r Review) error {
	if err := r.validate(); err != nil {
		return fmt.Errorf("save review for model %d: %w", version, err)
	}
	if r.When.IsZero() {
		r.When = time.Now().UTC()
	}
	v, err := encodeReview(r)
	if err != nil {
		return fmt.Errorf("save %s: %w", reviewWhere(version, r.Image), err)
	}
	err = p.update(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bktModels).Bucket(versionKey(version))
		if mb == nil {
			return fmt.Errorf("model %d: %w", version, ErrNotFound)
		}
		rb, err := mb.CreateBucketIfNotExists(keyReviews)
		if err != nil {
			return err
		}
		return rb.Put([]byte(r.Image), v)
	}, bktModels)
	if err != nil {
		return fmt.Errorf("save %s: %w", reviewWhere(version, r.Image), err)
	}
	return nil
}

// DeleteReview removes the review of image under a model version (no error
// when there is none).
func (p *Project) DeleteReview(version int, image string) error {
	err := p.update(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bktModels).Bucket(versionKey(version))
		if mb == nil {
			return fmt.Errorf("model %d: %w", version, ErrNotFound)
		}
		if rb := mb.Bucket(keyReviews); rb != nil {
			return rb.Delete([]byte(image))
		}
		return nil
	}, bktModels)
	if err != nil {
		return fmt.Errorf("delete %s: %w", reviewWhere(version, image), err)
	}
	return nil
}

// Reviews returns the reviews stored under a model version, keyed by
// image. A damaged value fails the call with an error naming the image and
// wrapping ErrDamaged; nothing is dropped silently.
func (p *Project) Reviews(version int) (map[string]Review, error) {
	out := map[string]Review{}
	err := p.view(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bktModels).Bucket(versionKey(version))
		if mb == nil {
			return fmt.Errorf("model %d: %w", version, ErrNotFound)
		}
		rb := mb.Bucket(keyReviews)
		if rb == nil {
			return nil
		}
		return rb.ForEach(func(k, v []byte) error {
			if v == nil {
				return fmt.Errorf("%s: a bucket, not a review: %w", reviewWhere(version, string(k)), ErrDamaged)
			}
			r, err := decodeReview(v, reviewWhere(version, string(k)))
			if err != nil {
				return err
			}
			if r.Image != string(k) {
				return fmt.Errorf("%s: the value names image %q: %w; %s", reviewWhere(version, string(k)), r.Image, ErrDamaged, damagedHint)
			}
			out[string(k)] = r
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reviews of model %d: %w", version, err)
	}
	return out, nil
}

// isReviewBucket reports whether a bucket path (as verifyContent names it)
// is a model version's reviews bucket.
func isReviewBucket(top []byte, where string) bool {
	return bytes.Equal(top, bktModels) && strings.HasSuffix(where, "/"+string(keyReviews))
}

// SetModelThresholds replaces the decision thresholds stored in a model
// version's record ("image" is the global one, "image/<category>" a
// category's; see ModelRecord.Thresholds). The model's parts are not
// touched: thresholds are a decision rule over the model's scores, so a
// reviewer's change keeps the version rather than making a new one.
func (p *Project) SetModelThresholds(version int, th map[string]float64) error {
	for _, k := range slices.Sorted(maps.Keys(th)) {
		if v := th[k]; v != v || v > 1e30 || v < -1e30 {
			return fmt.Errorf("thresholds of model %d: %s = %v is not a number", version, k, v)
		}
	}
	err := p.update(func(tx *bolt.Tx) error {
		rec, err := readModelTx(tx, version)
		if err != nil {
			return err
		}
		rec.Thresholds = maps.Clone(th)
		js, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Bucket(bktModels).Bucket(versionKey(version)).Put(keyRecord, js)
	}, bktModels)
	if err != nil {
		return fmt.Errorf("save thresholds of model %d: %w", version, err)
	}
	return nil
}
