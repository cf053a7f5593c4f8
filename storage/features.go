package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/dmad/workstation/core/mat"
	bolt "go.etcd.io/bbolt"
)

// Feature values: a 16-byte header — encoding byte, 3 reserved, rows and cols
// (uint32 BE), CRC-32C of the payload — then rows×cols little-endian float32
// or IEEE float16 values. One value per image and encoder, under
// features/<encoderID>/<image id>.
const (
	featHeader = 16
	encF32     = 1
	encF16     = 2
)

// FeatureEntry is one image's patch features for PutFeaturesBatch.
type FeatureEntry struct {
	ImageID  uint64
	Features *mat.Matrix
}

func encodeFeatures(m *mat.Matrix, format string) ([]byte, error) {
	if m == nil {
		return nil, errors.New("no feature matrix")
	}
	var v []byte
	switch format {
	case FeatureFloat16:
		v = make([]byte, featHeader+2*len(m.RawData()))
		v[0] = encF16
		for i, x := range m.RawData() {
			binary.LittleEndian.PutUint16(v[featHeader+2*i:], Float16(x))
		}
	case FeatureFloat32, "":
		v = make([]byte, featHeader+4*len(m.RawData()))
		v[0] = encF32
		for i, x := range m.RawData() {
			binary.LittleEndian.PutUint32(v[featHeader+4*i:], math.Float32bits(x))
		}
	default:
		return nil, fmt.Errorf("unknown feature encoding %q", format)
	}
	binary.BigEndian.PutUint32(v[4:], uint32(m.Rows()))
	binary.BigEndian.PutUint32(v[8:], uint32(m.Cols()))
	binary.BigEndian.PutUint32(v[12:], crc32.Checksum(v[featHeader:], castagnoli))
	return v, nil
}

func decodeFeatures(v []byte) (*mat.Matrix, error) {
	if len(v) < featHeader {
		return nil, errors.New("value too short")
	}
	rows, cols := int64(binary.BigEndian.Uint32(v[4:])), int64(binary.BigEndian.Uint32(v[8:]))
	payload := v[featHeader:]
	if binary.BigEndian.Uint32(v[12:]) != crc32.Checksum(payload, castagnoli) {
		return nil, errors.New("checksum mismatch")
	}
	// The size is checked against the payload before anything is allocated.
	var width int64
	switch v[0] {
	case encF32:
		width = 4
	case encF16:
		width = 2
	default:
		return nil, fmt.Errorf("unknown encoding %d", v[0])
	}
	// Division, not multiplication: rows·cols·width of two uint32 overflows int64.
	vals := int64(len(payload)) / width
	if int64(len(payload))%width != 0 || (cols == 0 && vals != 0) || (cols != 0 && (vals%cols != 0 || vals/cols != rows)) {
		return nil, fmt.Errorf("%d bytes for %d×%d values of %d bytes", len(payload), rows, cols, width)
	}
	if cols == 0 && rows > 1<<24 {
		return nil, fmt.Errorf("implausible size %d×%d", rows, cols)
	}
	m := mat.New(int(rows), int(cols))
	data := m.RawData()
	switch v[0] {
	case encF32:
		for i := range data {
			data[i] = math.Float32frombits(binary.LittleEndian.Uint32(payload[4*i:]))
		}
	case encF16:
		for i := range data {
			data[i] = Float32From16(binary.LittleEndian.Uint16(payload[2*i:]))
		}
	}
	return m, nil
}

// PutFeatures caches the patch features of image imageID computed by the
// encoder encoderID (e.g. a backbone card id with its input size), in the
// encoding of Settings.FeatureCache.
func (p *Project) PutFeatures(encoderID string, imageID uint64, m *mat.Matrix) error {
	return p.PutFeaturesBatch(context.Background(), encoderID, []FeatureEntry{{imageID, m}})
}

// PutFeaturesBatch caches many images' features in one transaction (much
// faster than one PutFeatures each).
func (p *Project) PutFeaturesBatch(ctx context.Context, encoderID string, entries []FeatureEntry) error {
	if encoderID == "" {
		return errors.New("put features: empty encoder id")
	}
	format := p.Settings().FeatureCache
	vals := make([][]byte, len(entries))
	for i, e := range entries {
		v, err := encodeFeatures(e.Features, format)
		if err != nil {
			return fmt.Errorf("put features %s/%d: %w", encoderID, e.ImageID, err)
		}
		vals[i] = v
	}
	err := p.update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bktFeatures).CreateBucketIfNotExists([]byte(encoderID))
		if err != nil {
			return err
		}
		for i, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := b.Put(idKey(e.ImageID), vals[i]); err != nil {
				return fmt.Errorf("image %d: %w", e.ImageID, err)
			}
		}
		return nil
	}, bktFeatures)
	if err != nil {
		return fmt.Errorf("put features %s: %w", encoderID, err)
	}
	return nil
}

// Features returns the cached features of imageID for encoderID (error wraps
// ErrNotFound when not cached; a damaged entry is reported by name).
func (p *Project) Features(encoderID string, imageID uint64) (*mat.Matrix, error) {
	var m *mat.Matrix
	err := p.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktFeatures).Bucket([]byte(encoderID))
		if b == nil {
			return ErrNotFound
		}
		v := b.Get(idKey(imageID))
		if v == nil {
			return ErrNotFound
		}
		var err error
		m, err = decodeFeatures(v) // decodes into Go memory inside the tx
		releaseMapped(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("features %s/%d: %w", encoderID, imageID, err)
	}
	return m, nil
}

// HasFeatures reports whether features of imageID for encoderID are cached.
func (p *Project) HasFeatures(encoderID string, imageID uint64) bool {
	var ok bool
	p.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bktFeatures).Bucket([]byte(encoderID)); b != nil {
			ok = b.Get(idKey(imageID)) != nil
		}
		return nil
	})
	return ok
}

// DropFeatures removes the whole feature cache of encoderID.
func (p *Project) DropFeatures(encoderID string) error {
	err := p.update(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bktFeatures)
		if fb.Bucket([]byte(encoderID)) == nil {
			return nil
		}
		return fb.DeleteBucket([]byte(encoderID))
	}, bktFeatures)
	if err != nil {
		return fmt.Errorf("drop features %s: %w", encoderID, err)
	}
	return nil
}

// Float16 converts x to IEEE 754 half precision, rounding to nearest even
// (mat.Float16).
func Float16(x float32) uint16 { return mat.Float16(x) }

// Float32From16 converts an IEEE 754 half-precision value to float32
// (mat.Float32From16).
func Float32From16(h uint16) float32 { return mat.Float32From16(h) }

// matrix blob encoding: "DMADMAT1", rows and cols as uint64 LE, then float32 LE.
var matMagic = []byte("DMADMAT1")

// MatrixReader returns a reader of m in the matrix blob encoding (for
// PutBlob); it encodes on the fly without copying the whole matrix.
func MatrixReader(m *mat.Matrix) io.Reader {
	hdr := make([]byte, 24)
	copy(hdr, matMagic)
	binary.LittleEndian.PutUint64(hdr[8:], uint64(m.Rows()))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(m.Cols()))
	return io.MultiReader(bytes.NewReader(hdr), &floatReader{data: m.RawData()})
}

type floatReader struct {
	data []float32
	tail []byte // bytes of a float split across Read calls
}

func (r *floatReader) Read(p []byte) (int, error) {
	n := copy(p, r.tail)
	r.tail = r.tail[n:]
	for len(r.data) > 0 && n+4 <= len(p) {
		k := min((len(p)-n)/4, len(r.data))
		for i, x := range r.data[:k] {
			binary.LittleEndian.PutUint32(p[n+4*i:], math.Float32bits(x))
		}
		n += 4 * k
		r.data = r.data[k:]
	}
	if n < len(p) && len(r.data) > 0 && len(r.tail) == 0 {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(r.data[0]))
		r.data = r.data[1:]
		c := copy(p[n:], b[:])
		n += c
		r.tail = append([]byte(nil), b[c:]...)
	}
	if n == 0 && len(r.data) == 0 && len(r.tail) == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// ReadMatrix decodes a matrix written by MatrixReader. The header's size is
// not trusted for allocation: the data grows as bytes actually arrive, so a
// header that lies costs no more memory than the bytes that follow it.
func ReadMatrix(r io.Reader) (*mat.Matrix, error) {
	hdr := make([]byte, 24)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("read matrix header: %w", err)
	}
	if !bytes.Equal(hdr[:8], matMagic) {
		return nil, errors.New("read matrix: not a matrix blob")
	}
	rows, cols := binary.LittleEndian.Uint64(hdr[8:]), binary.LittleEndian.Uint64(hdr[16:])
	if rows > 1<<32 || cols > 1<<24 || rows*cols > 1<<34 {
		return nil, fmt.Errorf("read matrix: implausible size %d×%d", rows, cols)
	}
	n := int(rows * cols)
	data := make([]float32, 0, min(n, 1<<18))
	buf := make([]byte, 1<<20)
	for len(data) < n {
		k := min(len(buf)/4, n-len(data))
		if _, err := io.ReadFull(r, buf[:4*k]); err != nil {
			return nil, fmt.Errorf("read matrix %d×%d: %w", rows, cols, err)
		}
		for i := range k {
			data = append(data, math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:])))
		}
	}
	return mat.FromData(int(rows), int(cols), data)
}
