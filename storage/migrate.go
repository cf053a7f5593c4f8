package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Schema history.
//
// Version 1 (the first prototype's layout): buckets meta (schema_version,
// name), settings (json), images keyed by file path with a JSON value
// {path, category, split, label, defect} and no content hash, size or ID, and
// masks keyed by file path holding bare PNG bytes without checksum.
//
// Version 2 (current): images keyed by a numeric ID with content hash and
// pixel size plus an image_paths index; masks keyed by image ID with a
// CRC-32C; feature caches, chunked checksummed blobs, models, training logs
// and evaluation runs.

// v1Image is the image value of schema 1.
type v1Image struct {
	Path     string `json:"path"`
	Category string `json:"category"`
	Split    string `json:"split"`
	Label    int    `json:"label"`
	Defect   string `json:"defect"`
}

// migrations[v] upgrades a file from schema v to v+1 inside one transaction.
func (p *Project) migrations() map[int]func(tx *bolt.Tx) error {
	return map[int]func(tx *bolt.Tx) error{
		1: p.migrate1to2,
	}
}

// migrate runs every step from version from to SchemaVersion, each step in
// its own transaction that also records the new version, so an interrupted
// migration resumes where it stopped.
func (p *Project) migrate(from int) error {
	steps := p.migrations()
	for v := from; v < SchemaVersion; v++ {
		step, ok := steps[v]
		if !ok {
			return fmt.Errorf("no migration from schema %d", v)
		}
		p.log.Info("migrating project", "path", p.path, "from", v, "to", v+1)
		err := p.update(func(tx *bolt.Tx) error {
			if err := step(tx); err != nil {
				return err
			}
			return tx.Bucket(bktMeta).Put(keySchema, []byte(strconv.Itoa(v+1)))
		})
		if err != nil {
			return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
		}
	}
	return nil
}

func (p *Project) migrate1to2(tx *bolt.Tx) error {
	// Read the old images and masks before the buckets are rebuilt.
	var olds []v1Image
	if b := tx.Bucket(bktImages); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			var r v1Image
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("v1 image %s: %w", k, err)
			}
			if r.Path == "" {
				r.Path = string(k)
			}
			olds = append(olds, r)
			return nil
		})
		if err != nil {
			return err
		}
	}
	masks := map[string][]byte{}
	if b := tx.Bucket(bktMasks); b != nil {
		b.ForEach(func(k, v []byte) error { masks[string(k)] = bytes.Clone(v); return nil })
	}
	for _, name := range [][]byte{bktImages, bktMasks} {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
	}
	for _, b := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	for _, o := range olds {
		rec := ImageRecord{Path: o.Path, Category: o.Category, Split: o.Split, Label: o.Label, Defect: o.Defect}
		sha, w, h, err := HashImageFile(o.Path)
		switch {
		case err == nil:
			rec.SHA256, rec.Width, rec.Height = sha, w, h
		case errors.Is(err, fs.ErrNotExist):
			p.log.Warn("migration: image file missing; record kept without hash", "path", o.Path)
		default:
			p.log.Warn("migration: image file unreadable; record kept without hash", "path", o.Path, "err", err)
		}
		if err := putImageTx(tx, &rec); err != nil {
			return fmt.Errorf("image %s: %w", o.Path, err)
		}
		if png, ok := masks[o.Path]; ok {
			v := make([]byte, 4+len(png))
			binary.BigEndian.PutUint32(v, crc32.Checksum(png, castagnoli))
			copy(v[4:], png)
			if err := tx.Bucket(bktMasks).Put(idKey(rec.ID), v); err != nil {
				return fmt.Errorf("mask %s: %w", o.Path, err)
			}
		}
	}
	if tx.Bucket(bktSettings).Get(keyJSON) == nil {
		js, err := json.Marshal(DefaultSettings())
		if err != nil {
			return err
		}
		return tx.Bucket(bktSettings).Put(keyJSON, js)
	}
	return nil
}
