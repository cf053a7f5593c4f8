package storage

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ChunkSize is the size of one stored blob chunk. A blob of any size is
// written and read one chunk at a time.
const ChunkSize = 4 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Keys inside a blob's own bucket: the header, then one key per chunk.
var (
	keyBlobHeader = []byte("h")
	chunkPrefix   = byte('c')
)

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Kind    string    `json:"kind,omitempty"`
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	Chunks  int       `json:"chunks"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
}

// blobHeader is stored under keyBlobHeader; Nonce changes with every write so
// that a reader spanning several read transactions notices a rewrite.
type blobHeader struct {
	BlobInfo
	ChunkSize int    `json:"chunk_size"`
	Nonce     uint64 `json:"nonce"`
}

func chunkKey(i int) []byte {
	k := make([]byte, 5)
	k[0] = chunkPrefix
	binary.BigEndian.PutUint32(k[1:], uint32(i))
	return k
}

// writeBlob streams r into a new bucket key under parent (replacing any old
// one), chunk by chunk, inside the caller's write transaction. display names
// the blob in errors.
func writeBlob(ctx context.Context, parent *bolt.Bucket, key []byte, display string, r io.Reader, chunkSize int) (BlobInfo, error) {
	if parent.Bucket(key) != nil {
		if err := parent.DeleteBucket(key); err != nil {
			return BlobInfo{}, fmt.Errorf("blob %s: replace: %w", display, err)
		}
	}
	b, err := parent.CreateBucket(key)
	if err != nil {
		return BlobInfo{}, fmt.Errorf("blob %s: %w", display, err)
	}
	sum := sha256.New()
	var size int64
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return BlobInfo{}, fmt.Errorf("blob %s: %w", display, err)
		}
		// bbolt keeps a reference to the value until commit: a fresh buffer per chunk.
		buf := make([]byte, 4+chunkSize)
		m, rerr := io.ReadFull(r, buf[4:])
		if m > 0 {
			data := buf[4 : 4+m]
			binary.BigEndian.PutUint32(buf[:4], crc32.Checksum(data, castagnoli))
			sum.Write(data)
			if err := b.Put(chunkKey(n), buf[:4+m]); err != nil {
				return BlobInfo{}, fmt.Errorf("blob %s chunk %d: %w", display, n, err)
			}
			n++
			size += int64(m)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return BlobInfo{}, fmt.Errorf("blob %s: read source: %w", display, rerr)
		}
	}
	h := blobHeader{
		BlobInfo:  BlobInfo{Name: display, Size: size, Chunks: n, SHA256: hex.EncodeToString(sum.Sum(nil)), Created: time.Now().UTC()},
		ChunkSize: chunkSize,
		Nonce:     rand.Uint64(),
	}
	js, err := json.Marshal(h)
	if err != nil {
		return BlobInfo{}, fmt.Errorf("blob %s: %w", display, err)
	}
	if err := b.Put(keyBlobHeader, js); err != nil {
		return BlobInfo{}, fmt.Errorf("blob %s: %w", display, err)
	}
	return h.BlobInfo, nil
}

func readBlobHeader(b *bolt.Bucket, display string) (blobHeader, error) {
	var h blobHeader
	js := b.Get(keyBlobHeader)
	if js == nil {
		return h, fmt.Errorf("blob %s: header missing (incomplete blob)", display)
	}
	if err := json.Unmarshal(js, &h); err != nil {
		return h, fmt.Errorf("blob %s: header damaged: %w", display, err)
	}
	return h, nil
}

// resolve walks a bucket path from the root; nil if any step is missing.
func resolve(tx *bolt.Tx, path [][]byte) *bolt.Bucket {
	b := tx.Bucket(path[0])
	for _, k := range path[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket(k)
	}
	return b
}

// BlobReader streams a stored blob chunk by chunk, each chunk in its own
// short read transaction, verifying each chunk's CRC-32C and, at the end, the
// whole blob's size and SHA-256. Memory use is one chunk.
type BlobReader struct {
	p       *Project
	path    [][]byte
	display string
	h       blobHeader
	next    int    // next chunk to load
	cur     []byte // unread part of the current chunk
	buf     []byte // chunk buffer, reused
	sum     hash.Hash
	read    int64
	err     error // sticky
}

// openBlob reads the header of the blob bucket at path.
func openBlob(p *Project, path [][]byte, display string) (*BlobReader, error) {
	br := &BlobReader{p: p, path: path, display: display, sum: sha256.New()}
	err := p.view(func(tx *bolt.Tx) error {
		b := resolve(tx, path)
		if b == nil {
			return fmt.Errorf("blob %s: %w", display, ErrNotFound)
		}
		var err error
		br.h, err = readBlobHeader(b, display)
		return err
	})
	if err != nil {
		return nil, err
	}
	return br, nil
}

// Info describes the blob being read.
func (r *BlobReader) Info() BlobInfo { return r.h.BlobInfo }

// Size is the blob's length in bytes.
func (r *BlobReader) Size() int64 { return r.h.Size }

// Read implements io.Reader. A damaged chunk yields an error naming the blob
// and the chunk.
func (r *BlobReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for len(r.cur) == 0 {
		if r.next >= r.h.Chunks {
			r.err = r.finish()
			return 0, r.err
		}
		if err := r.load(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

func (r *BlobReader) load() error {
	i := r.next
	err := r.p.view(func(tx *bolt.Tx) error {
		b := resolve(tx, r.path)
		if b == nil {
			return fmt.Errorf("blob %s: deleted while reading", r.display)
		}
		h, err := readBlobHeader(b, r.display)
		if err != nil {
			return err
		}
		if h.Nonce != r.h.Nonce {
			return fmt.Errorf("blob %s: rewritten while reading", r.display)
		}
		v := b.Get(chunkKey(i))
		if v == nil {
			return fmt.Errorf("blob %s chunk %d: missing", r.display, i)
		}
		if len(v) < 4 || binary.BigEndian.Uint32(v[:4]) != crc32.Checksum(v[4:], castagnoli) {
			return fmt.Errorf("blob %s chunk %d: checksum mismatch", r.display, i)
		}
		r.buf = append(r.buf[:0], v[4:]...) // v is only valid inside the transaction
		r.cur = r.buf
		return nil
	})
	if err != nil {
		return err
	}
	r.sum.Write(r.cur)
	r.read += int64(len(r.cur))
	r.next++
	return nil
}

func (r *BlobReader) finish() error {
	if r.read != r.h.Size {
		return fmt.Errorf("blob %s: size %d, header says %d", r.display, r.read, r.h.Size)
	}
	if got := hex.EncodeToString(r.sum.Sum(nil)); got != r.h.SHA256 {
		return fmt.Errorf("blob %s: checksum mismatch (sha256 %s, header says %s)", r.display, got, r.h.SHA256)
	}
	return io.EOF
}

// Close releases the reader (it holds no transaction between reads).
func (r *BlobReader) Close() error {
	if r.err == nil {
		r.err = errors.New("blob reader closed")
	}
	return nil
}

// verifyBlobInTx checks every chunk CRC and the whole SHA-256 inside one transaction.
func verifyBlobInTx(b *bolt.Bucket, display string) (BlobInfo, error) {
	h, err := readBlobHeader(b, display)
	if err != nil {
		return BlobInfo{}, err
	}
	sum := sha256.New()
	var size int64
	for i := 0; i < h.Chunks; i++ {
		v := b.Get(chunkKey(i))
		if v == nil {
			return h.BlobInfo, fmt.Errorf("blob %s chunk %d: missing", display, i)
		}
		if len(v) < 4 || binary.BigEndian.Uint32(v[:4]) != crc32.Checksum(v[4:], castagnoli) {
			return h.BlobInfo, fmt.Errorf("blob %s chunk %d: checksum mismatch", display, i)
		}
		sum.Write(v[4:])
		size += int64(len(v) - 4)
	}
	if size != h.Size {
		return h.BlobInfo, fmt.Errorf("blob %s: size %d, header says %d", display, size, h.Size)
	}
	if hex.EncodeToString(sum.Sum(nil)) != h.SHA256 {
		return h.BlobInfo, fmt.Errorf("blob %s: checksum mismatch", display)
	}
	return h.BlobInfo, nil
}

func blobPath(kind, name string) [][]byte {
	return [][]byte{bktBlobs, []byte(kind), []byte(name)}
}

func checkBlobName(kind, name string) error {
	if kind == "" || name == "" {
		return fmt.Errorf("blob %q/%q: kind and name must not be empty", kind, name)
	}
	return nil
}

// PutBlob stores the content of r as the blob kind/name (e.g. "banks",
// "normal"), replacing any previous one, in one transaction. r is consumed
// one chunk at a time; note that bbolt keeps a transaction's dirty pages in
// memory until commit, so a write needs about twice the blob's size in RAM.
func (p *Project) PutBlob(ctx context.Context, kind, name string, r io.Reader) (BlobInfo, error) {
	if err := checkBlobName(kind, name); err != nil {
		return BlobInfo{}, err
	}
	var info BlobInfo
	err := p.update(func(tx *bolt.Tx) error {
		kb, err := tx.Bucket(bktBlobs).CreateBucketIfNotExists([]byte(kind))
		if err != nil {
			return err
		}
		info, err = writeBlob(ctx, kb, []byte(name), kind+"/"+name, r, p.chunkSize())
		return err
	}, bktBlobs)
	if err != nil {
		return BlobInfo{}, fmt.Errorf("put blob %s/%s: %w", kind, name, err)
	}
	info.Kind, info.Name = kind, name
	return info, nil
}

// OpenBlob returns a streaming reader of the blob kind/name. Errors wrap
// ErrNotFound when it does not exist.
func (p *Project) OpenBlob(kind, name string) (*BlobReader, error) {
	br, err := openBlob(p, blobPath(kind, name), kind+"/"+name)
	if err != nil {
		return nil, err
	}
	br.h.Kind, br.h.Name = kind, name
	return br, nil
}

// Blobs lists the blobs of one kind.
func (p *Project) Blobs(kind string) ([]BlobInfo, error) {
	var out []BlobInfo
	err := p.view(func(tx *bolt.Tx) error {
		kb := tx.Bucket(bktBlobs).Bucket([]byte(kind))
		if kb == nil {
			return nil
		}
		return kb.ForEachBucket(func(k []byte) error {
			h, err := readBlobHeader(kb.Bucket(k), kind+"/"+string(k))
			if err != nil {
				return err
			}
			h.Kind, h.Name = kind, string(k)
			out = append(out, h.BlobInfo)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list blobs %s: %w", kind, err)
	}
	return out, nil
}

// DeleteBlob removes the blob kind/name; it is not an error if it is absent.
func (p *Project) DeleteBlob(kind, name string) error {
	err := p.update(func(tx *bolt.Tx) error {
		kb := tx.Bucket(bktBlobs).Bucket([]byte(kind))
		if kb == nil || kb.Bucket([]byte(name)) == nil {
			return nil
		}
		return kb.DeleteBucket([]byte(name))
	}, bktBlobs)
	if err != nil {
		return fmt.Errorf("delete blob %s/%s: %w", kind, name, err)
	}
	return nil
}

// VerifyBlob reads the whole blob kind/name and checks its checksums.
func (p *Project) VerifyBlob(kind, name string) error {
	return p.view(func(tx *bolt.Tx) error {
		b := resolve(tx, blobPath(kind, name))
		if b == nil {
			return fmt.Errorf("blob %s/%s: %w", kind, name, ErrNotFound)
		}
		_, err := verifyBlobInTx(b, kind+"/"+name)
		return err
	})
}
