package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxProblems bounds the problems one check lists (a badly damaged file can
// yield one per page).
const maxProblems = 200

// CheckReport is the result of CheckFile: every problem found, and what was
// verified.
type CheckReport struct {
	Path     string         `json:"path"`
	Problems []string       `json:"problems"`
	Keys     map[string]int `json:"keys,omitempty"` // keys per top-level bucket, as walked
	Blobs    int            `json:"blobs_verified"` // blobs whose chunks and SHA-256 were checked
	Masks    int            `json:"masks_verified"`
	Features int            `json:"features_verified"`
}

// OK reports whether the check found nothing wrong.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

func (r *CheckReport) add(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	} else if len(r.Problems) == maxProblems {
		r.Problems = append(r.Problems, "… further problems not listed")
	}
}

// CheckFile verifies the project file at path completely, read-only: the
// file's length against its header, bbolt's own page check (Tx.Check: page
// types, key order, reachability, the freelist), every schema bucket, the
// key-count manifest, and the content checksum of every blob (model parts
// included), mask and feature cache. It returns a report listing every
// problem; err is only for a file that cannot be examined at all (missing,
// locked by a writer).
func CheckFile(ctx context.Context, path string) (CheckReport, error) {
	rep := CheckReport{Path: path}
	if _, err := os.Stat(path); err != nil {
		return rep, fmt.Errorf("check project %s: %w", path, err)
	}
	if err := checkFileSize(path); err != nil {
		rep.add("file: %v", err)
		return rep, nil
	}
	db, err := openBolt(path, Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return rep, err
		}
		rep.add("open: %v", err)
		return rep, nil
	}
	defer db.Close()
	p := &Project{db: db, path: path, readOnly: true}
	// The structure walk first: it reads every branch and leaf page under
	// the guard. bbolt's own checker runs in a goroutine of its own, where
	// a memory fault could not be recovered, so it only runs on a tree the
	// walk could read completely.
	if err := p.view(func(tx *bolt.Tx) error { _, err := countKeys(tx); return err }); err != nil {
		rep.add("structure: %v", err)
		rep.add("pages: bbolt's page check skipped: the walk of the tree stopped at the damage above")
	} else if err := p.view(readAll); err != nil {
		rep.add("structure: %v", err)
		rep.add("pages: bbolt's page check skipped: reading every bucket and key stopped at the damage above")
	} else if err := p.checkPages(); err != nil {
		err = p.view(func(tx *bolt.Tx) error {
			for err := range tx.Check() { // drain: the checker runs until the channel closes
				rep.add("pages: %v", err)
			}
			return nil
		})
		if err != nil {
			rep.add("pages: %v", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if err := p.view(checkStructure); err != nil && !errors.Is(err, errKeyOrder) {
		rep.add("structure: %v", err) // buckets and manifest (key order is reported above)
	}
	if err := p.view(func(tx *bolt.Tx) error {
		if v, err := schemaVersionOf(tx); err != nil || v != SchemaVersion {
			rep.add("meta: schema version %d (%v), want %d", v, err, SchemaVersion)
		}
		rep.Keys, _ = countKeys(tx)
		return nil
	}); err != nil {
		rep.add("structure: %v", err)
	}
	// Content checksums, one top-level bucket per transaction so that one
	// bad page costs the rest of its bucket only.
	for _, name := range allBuckets {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		err := p.view(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			if b == nil {
				return nil
			}
			return verifyContent(ctx, &rep, b, string(name), name)
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			rep.add("%s: %v", name, err)
		}
	}
	return rep, ctx.Err()
}

// isBlob reports whether b is a chunked blob's bucket.
func isBlob(b *bolt.Bucket) bool { return b.Get(keyBlobHeader) != nil }

// verifyContent checks the checksums of everything under b (at path where;
// top is the top-level bucket it lies in).
func verifyContent(ctx context.Context, rep *CheckReport, b *bolt.Bucket, where string, top []byte) error {
	if isBlob(b) {
		if _, err := verifyBlobInTx(b, where); err != nil {
			rep.add("%v", err)
		}
		rep.Blobs++
		return nil
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if v == nil {
			if child := b.Bucket(k); child != nil {
				if err := verifyContent(ctx, rep, child, where+"/"+printable(k), top); err != nil {
					return err
				}
			}
			continue
		}
		switch {
		case bytes.Equal(top, bktMasks):
			rep.Masks++
			if len(v) < 4 || binary.BigEndian.Uint32(v[:4]) != crc32.Checksum(v[4:], castagnoli) {
				rep.add("mask of image %s: checksum mismatch", keyID(k))
			}
		case isReviewBucket(top, where):
			if len(v) < 4 || binary.BigEndian.Uint32(v[:4]) != crc32.Checksum(v[4:], castagnoli) {
				rep.add("%s/%s: review checksum mismatch", where, printable(k))
			}
		case bytes.Equal(top, bktFeatures):
			rep.Features++
			if _, err := decodeFeatures(v); err != nil {
				rep.add("features %s of image %s: %v", where, keyID(k), err)
			}
		}
	}
	return nil
}

// keyID renders an 8-byte id key as its number.
func keyID(k []byte) string {
	if len(k) == 8 {
		return strconv.FormatUint(binary.BigEndian.Uint64(k), 10)
	}
	return printable(k)
}

// SalvageReport says what Salvage copied and what it left behind.
type SalvageReport struct {
	Copied  map[string]int `json:"copied"` // keys copied per top-level bucket, nested ones included
	Dropped []string       `json:"dropped"`
}

// Salvage copies everything readable from the (damaged) project at src into
// a new project file dst, which must not exist: bucket by bucket and key by
// key, skipping what bbolt cannot read, then dropping blobs and masks whose
// checksums fail and models with a missing or damaged part, so that dst
// passes CheckFile. src is opened read-only and never modified.
func Salvage(ctx context.Context, src, dst string) (SalvageReport, error) {
	rep := SalvageReport{Copied: map[string]int{}}
	if err := checkFileSize(src); err != nil {
		// A truncated file may still hold its early pages; bbolt cannot map
		// it safely though, so refuse rather than risk a fault in its checker.
		return rep, fmt.Errorf("salvage %s: %w", src, err)
	}
	sdb, err := openBolt(src, Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		return rep, fmt.Errorf("salvage %s: %w", src, err)
	}
	defer sdb.Close()
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return rep, fmt.Errorf("salvage into %s: %w", dst, err)
	}
	f.Close()
	ddb, err := bolt.Open(dst, 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		os.Remove(dst)
		return rep, fmt.Errorf("salvage into %s: %w", dst, err)
	}
	sp := &Project{db: sdb, path: src, readOnly: true}
	for _, name := range allBuckets {
		if err := ctx.Err(); err != nil {
			ddb.Close()
			os.Remove(dst)
			return rep, err
		}
		err := ddb.Update(func(dtx *bolt.Tx) error {
			db, err := dtx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			verr := sp.view(func(stx *bolt.Tx) error {
				sb := stx.Bucket(name)
				if sb == nil {
					rep.Dropped = append(rep.Dropped, fmt.Sprintf("bucket %s: missing in the source", name))
					return nil
				}
				return copyBucket(sb, db, string(name), string(name), &rep)
			})
			if verr != nil {
				rep.Dropped = append(rep.Dropped, fmt.Sprintf("bucket %s: the rest unreadable: %v", name, verr))
			}
			return nil
		})
		if err != nil {
			ddb.Close()
			os.Remove(dst)
			return rep, fmt.Errorf("salvage into %s: %w", dst, err)
		}
	}
	err = ddb.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bktMeta)
		if v, _ := schemaVersionOf(tx); v != SchemaVersion {
			if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
		}
		if meta.Get(keyName) == nil {
			meta.Put(keyName, []byte("salvaged"))
		}
		dropDamaged(tx, &rep)
		return writeManifest(tx, nil)
	})
	ddb.Close()
	if err != nil {
		os.Remove(dst)
		return rep, fmt.Errorf("salvage into %s: %w", dst, err)
	}
	return rep, nil
}

// copyBucket copies src into dst recursively; a nested bucket that bbolt
// cannot read is reported and skipped, keeping its siblings. Values are
// copied (bbolt's point into the source mapping).
func copyBucket(src, dst *bolt.Bucket, top, where string, rep *SalvageReport) (err error) {
	defer guard(where, "copy", &err)
	c := src.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) == 0 {
			continue
		}
		if v != nil {
			if err := dst.Put(bytes.Clone(k), bytes.Clone(v)); err != nil {
				return err
			}
			rep.Copied[top]++
			continue
		}
		child := src.Bucket(k)
		if child == nil {
			continue
		}
		dchild, err := dst.CreateBucketIfNotExists(bytes.Clone(k))
		if err != nil {
			return err
		}
		rep.Copied[top]++
		if cerr := copyBucket(child, dchild, top, where+"/"+printable(k), rep); cerr != nil {
			rep.Dropped = append(rep.Dropped, fmt.Sprintf("bucket %s/%s: partly unreadable: %v", where, printable(k), cerr))
		}
	}
	return nil
}

// dropDamaged removes, in the salvaged copy, blobs that fail their checksums,
// masks that fail theirs, and models with a missing or damaged part.
func dropDamaged(tx *bolt.Tx, rep *SalvageReport) {
	if kinds := tx.Bucket(bktBlobs); kinds != nil {
		var dead [][2][]byte
		kinds.ForEachBucket(func(kind []byte) error {
			kb := kinds.Bucket(kind)
			return kb.ForEachBucket(func(name []byte) error {
				if _, err := verifyBlobInTx(kb.Bucket(name), string(kind)+"/"+string(name)); err != nil {
					dead = append(dead, [2][]byte{bytes.Clone(kind), bytes.Clone(name)})
					rep.Dropped = append(rep.Dropped, err.Error())
				}
				return nil
			})
		})
		for _, d := range dead {
			kinds.Bucket(d[0]).DeleteBucket(d[1])
		}
	}
	if masks := tx.Bucket(bktMasks); masks != nil {
		var dead [][]byte
		masks.ForEach(func(k, v []byte) error {
			if v != nil && (len(v) < 4 || binary.BigEndian.Uint32(v[:4]) != crc32.Checksum(v[4:], castagnoli)) {
				dead = append(dead, bytes.Clone(k))
				rep.Dropped = append(rep.Dropped, fmt.Sprintf("mask of image %s: checksum mismatch", keyID(k)))
			}
			return nil
		})
		for _, k := range dead {
			masks.Delete(k)
		}
	}
	if models := tx.Bucket(bktModels); models != nil {
		var dead [][]byte
		models.ForEachBucket(func(k []byte) error {
			if len(k) != 8 {
				return nil
			}
			v := int(binary.BigEndian.Uint64(k))
			rec, err := readModelTx(tx, v)
			if err == nil {
				pb := models.Bucket(k).Bucket(keyParts)
				for _, part := range rec.Parts {
					var b *bolt.Bucket
					if pb != nil {
						b = pb.Bucket([]byte(part.Name))
					}
					if b == nil {
						err = fmt.Errorf("part %s missing", part.Name)
						break
					}
					if _, err = verifyBlobInTx(b, modelPartName(v, part.Name)); err != nil {
						break
					}
				}
			}
			if err != nil {
				dead = append(dead, bytes.Clone(k))
				rep.Dropped = append(rep.Dropped, fmt.Sprintf("model %d: %v", v, err))
			}
			return nil
		})
		for _, k := range dead {
			models.DeleteBucket(k)
		}
		if a := tx.Bucket(bktMeta).Get(keyActive); a != nil && models.Bucket(versionKey(activeVersion(tx))) == nil {
			tx.Bucket(bktMeta).Delete(keyActive)
		}
	}
}
