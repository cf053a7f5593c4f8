package storage

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"os"

	"github.com/dmad/workstation/core/progress"

	// Decoders for DecodeConfig in HashImageFile.
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"

	bolt "go.etcd.io/bbolt"
)

// Splits and labels used in ImageRecord.
const (
	SplitTrain = "train"
	SplitTest  = "test"

	LabelNormal    = 0
	LabelAnomalous = 1
	// LabelUnknown marks an image whose ground truth is not known (an
	// inspected file outside the project); it is never stored.
	LabelUnknown = -1
)

// ImageRecord is one image of the project. The file stays where the user
// keeps it; the record remembers its content hash so CheckImages can tell
// when it changed or vanished.
type ImageRecord struct {
	ID       uint64 `json:"id"`
	Path     string `json:"path"`
	SHA256   string `json:"sha256"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Category string `json:"category"`
	Split    string `json:"split"`  // SplitTrain or SplitTest
	Label    int    `json:"label"`  // LabelNormal or LabelAnomalous
	Defect   string `json:"defect"` // defect type, "" or "good" for normal images
	Seen     bool   `json:"seen"`   // marked as a seen (annotated, training) anomaly
	// Weak marks an anomaly known to be defective without a mask: the
	// semi-supervised regime trains on its top-scoring patches.
	Weak bool `json:"weak,omitempty"`
}

func idKey(id uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, id)
	return k
}

// HashImageFile returns the SHA-256 of the file at path and its pixel size
// (size 0×0 when its format is not one the standard decoders know).
func HashImageFile(path string) (sha string, width, height int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, 0, fmt.Errorf("hash image %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", 0, 0, fmt.Errorf("hash image %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, 0, fmt.Errorf("hash image %s: %w", path, err)
	}
	if cfg, _, err := image.DecodeConfig(f); err == nil {
		width, height = cfg.Width, cfg.Height
	}
	return hex.EncodeToString(h.Sum(nil)), width, height, nil
}

// PutImage adds or updates an image record. A record with ID 0 gets a new ID
// (written back to rec); a path already recorded under another ID is refused.
func (p *Project) PutImage(rec *ImageRecord) error {
	if rec.Path == "" {
		return errors.New("put image: empty path")
	}
	err := p.update(func(tx *bolt.Tx) error { return putImageTx(tx, rec) }, bktImages, bktImagePaths)
	if err != nil {
		return fmt.Errorf("put image %s: %w", rec.Path, err)
	}
	return nil
}

// PutImages adds or updates many image records in one transaction.
func (p *Project) PutImages(recs []*ImageRecord) error {
	err := p.update(func(tx *bolt.Tx) error {
		for _, rec := range recs {
			if err := putImageTx(tx, rec); err != nil {
				return fmt.Errorf("image %s: %w", rec.Path, err)
			}
		}
		return nil
	}, bktImages, bktImagePaths)
	if err != nil {
		return fmt.Errorf("put images: %w", err)
	}
	return nil
}

func putImageTx(tx *bolt.Tx, rec *ImageRecord) error {
	imgs, paths := tx.Bucket(bktImages), tx.Bucket(bktImagePaths)
	if old := paths.Get([]byte(rec.Path)); old != nil && binary.BigEndian.Uint64(old) != rec.ID {
		if rec.ID != 0 {
			return fmt.Errorf("path already recorded as image %d", binary.BigEndian.Uint64(old))
		}
		rec.ID = binary.BigEndian.Uint64(old) // same path: update that record
	}
	if rec.ID == 0 {
		id, err := imgs.NextSequence()
		if err != nil {
			return err
		}
		rec.ID = id
	} else if rec.ID > imgs.Sequence() {
		if err := imgs.SetSequence(rec.ID); err != nil {
			return err
		}
	}
	if prev := imgs.Get(idKey(rec.ID)); prev != nil { // path changed: drop the old index entry
		var old ImageRecord
		if json.Unmarshal(prev, &old) == nil && old.Path != rec.Path {
			if err := paths.Delete([]byte(old.Path)); err != nil {
				return err
			}
		}
	}
	js, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := imgs.Put(idKey(rec.ID), js); err != nil {
		return err
	}
	return paths.Put([]byte(rec.Path), idKey(rec.ID))
}

// Image returns the record with the given ID (error wraps ErrNotFound).
func (p *Project) Image(id uint64) (ImageRecord, error) {
	var rec ImageRecord
	err := p.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktImages).Get(idKey(id))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return rec, fmt.Errorf("image %d: %w", id, err)
	}
	return rec, nil
}

// ImageByPath returns the record of the image at path (error wraps ErrNotFound).
func (p *Project) ImageByPath(path string) (ImageRecord, error) {
	var rec ImageRecord
	err := p.view(func(tx *bolt.Tx) error {
		k := tx.Bucket(bktImagePaths).Get([]byte(path))
		if k == nil {
			return ErrNotFound
		}
		v := tx.Bucket(bktImages).Get(k)
		if v == nil {
			return fmt.Errorf("path index points to missing image %d", binary.BigEndian.Uint64(k))
		}
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return rec, fmt.Errorf("image %s: %w", path, err)
	}
	return rec, nil
}

// ImageFilter selects images in Images; empty fields match everything.
type ImageFilter struct {
	Category string
	Split    string
	Label    *int
}

func (f ImageFilter) match(r *ImageRecord) bool {
	return (f.Category == "" || f.Category == r.Category) &&
		(f.Split == "" || f.Split == r.Split) &&
		(f.Label == nil || *f.Label == r.Label)
}

// Images lists the records matching f, in ID order.
func (p *Project) Images(f ImageFilter) ([]ImageRecord, error) {
	var out []ImageRecord
	err := p.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktImages).ForEach(func(k, v []byte) error {
			var r ImageRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("image %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if f.match(&r) {
				out = append(out, r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return out, nil
}

// DeleteImage removes an image record with its mask and cached features.
func (p *Project) DeleteImage(id uint64) error {
	err := p.update(func(tx *bolt.Tx) error {
		k := idKey(id)
		v := tx.Bucket(bktImages).Get(k)
		if v == nil {
			return ErrNotFound
		}
		var r ImageRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if err := tx.Bucket(bktImagePaths).Delete([]byte(r.Path)); err != nil {
			return err
		}
		if err := tx.Bucket(bktImages).Delete(k); err != nil {
			return err
		}
		if err := tx.Bucket(bktMasks).Delete(k); err != nil {
			return err
		}
		fb := tx.Bucket(bktFeatures)
		return fb.ForEachBucket(func(enc []byte) error { return fb.Bucket(enc).Delete(k) })
	}, bktImages, bktImagePaths, bktMasks, bktFeatures)
	if err != nil {
		return fmt.Errorf("delete image %d: %w", id, err)
	}
	return nil
}

// Image change states reported by CheckImages.
const (
	ImageChanged = "changed" // the file's content hash differs from the record
	ImageMissing = "missing" // the file no longer exists
	ImageBroken  = "error"   // the file exists but could not be read
)

// ImageChange is one image whose file no longer matches its record.
type ImageChange struct {
	ID     uint64
	Path   string
	Status string // ImageChanged, ImageMissing or ImageBroken
	SHA256 string // current hash when Status is ImageChanged
	Err    error  // cause when Status is ImageBroken
}

// CheckImages re-hashes every recorded image file and returns those that
// changed or vanished. report (may be nil) gets a progress.CheckImages
// event after each image.
// Records without a hash (e.g. migrated from a missing file) count as changed
// once their file is readable.
func (p *Project) CheckImages(ctx context.Context, report progress.Func) ([]ImageChange, error) {
	recs, err := p.Images(ImageFilter{})
	if err != nil {
		return nil, err
	}
	var out []ImageChange
	for i, r := range recs {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("check images: %w", err)
		}
		sha, _, _, err := HashImageFile(r.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, ImageChange{ID: r.ID, Path: r.Path, Status: ImageMissing})
		case err != nil:
			out = append(out, ImageChange{ID: r.ID, Path: r.Path, Status: ImageBroken, Err: err})
		case sha != r.SHA256:
			out = append(out, ImageChange{ID: r.ID, Path: r.Path, Status: ImageChanged, SHA256: sha})
		}
		report.Send(progress.Event{Stage: progress.CheckImages, Done: i + 1, Total: len(recs)})
	}
	return out, nil
}
