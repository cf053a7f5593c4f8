package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/draw"
	"image/png"

	bolt "go.etcd.io/bbolt"
)

// maxMaskPixels bounds a stored mask's size (the images' own limit, see
// core/imageio.DefaultMaxPixels).
const maxMaskPixels = 100_000_000

// PutMask stores the defect mask of image id as a PNG with a CRC-32C.
func (p *Project) PutMask(id uint64, m *image.Gray) error {
	if m == nil {
		return fmt.Errorf("put mask %d: nil mask", id)
	}
	var buf bytes.Buffer
	buf.Write(make([]byte, 4))
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, m); err != nil {
		return fmt.Errorf("put mask %d: encode: %w", id, err)
	}
	v := buf.Bytes()
	binary.BigEndian.PutUint32(v[:4], crc32.Checksum(v[4:], castagnoli))
	err := p.update(func(tx *bolt.Tx) error { return tx.Bucket(bktMasks).Put(idKey(id), v) }, bktMasks)
	if err != nil {
		return fmt.Errorf("put mask %d: %w", id, err)
	}
	return nil
}

// Mask returns the mask of image id (error wraps ErrNotFound when none).
func (p *Project) Mask(id uint64) (*image.Gray, error) {
	var v []byte
	err := p.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktMasks).Get(idKey(id))
		if b == nil {
			return ErrNotFound
		}
		v = bytes.Clone(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mask %d: %w", id, err)
	}
	if len(v) < 4 || binary.BigEndian.Uint32(v[:4]) != crc32.Checksum(v[4:], castagnoli) {
		return nil, fmt.Errorf("mask %d: checksum mismatch", id)
	}
	// A project may come from anyone: check the header's size before the
	// decoder allocates for it.
	cfg, err := png.DecodeConfig(bytes.NewReader(v[4:]))
	if err != nil {
		return nil, fmt.Errorf("mask %d: decode: %w", id, err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxMaskPixels {
		return nil, fmt.Errorf("mask %d: %d×%d pixels is more than the %d allowed: %w", id, cfg.Width, cfg.Height, maxMaskPixels, ErrDamaged)
	}
	img, err := png.Decode(bytes.NewReader(v[4:]))
	if err != nil {
		return nil, fmt.Errorf("mask %d: decode: %w", id, err)
	}
	if g, ok := img.(*image.Gray); ok {
		return g, nil
	}
	g := image.NewGray(img.Bounds())
	draw.Draw(g, g.Bounds(), img, img.Bounds().Min, draw.Src)
	return g, nil
}

// HasMask reports whether image id has a stored mask.
func (p *Project) HasMask(id uint64) bool {
	var ok bool
	p.view(func(tx *bolt.Tx) error { ok = tx.Bucket(bktMasks).Get(idKey(id)) != nil; return nil })
	return ok
}

// DeleteMask removes the mask of image id, if any.
func (p *Project) DeleteMask(id uint64) error {
	if err := p.update(func(tx *bolt.Tx) error { return tx.Bucket(bktMasks).Delete(idKey(id)) }, bktMasks); err != nil {
		return fmt.Errorf("delete mask %d: %w", id, err)
	}
	return nil
}
