package inspection

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// MapsName is the file of an inspection output folder that holds the
// patch-grid anomaly maps and the ground-truth masks of a labelled run, so
// that a merge of shard outputs computes the same pixel metrics as an
// unsharded run. It is written only when every image's label is known.
const MapsName = "maps.bin"

// mapsMagic opens maps.bin; the digit is the format's version.
const mapsMagic = "DMADMAP1"

// Limits on what maps.bin may claim; each is far above what an encoder
// produces (MobileNetV2 at 224: a 28×28 grid, masks at 224²), and every
// count is also checked against the bytes left in the file before anything
// is allocated.
const (
	maxMapGrid = 1024
	maxMapSize = 8192
	maxPathLen = 4096
)

// PixelMaps are the anomaly maps of a labelled run: each image's patch
// scores on the encoder's GridH×GridW grid and its defect mask in the
// encoder's Size×Size input geometry (nil for good images).
type PixelMaps struct {
	GridH, GridW int
	// Size is the side of the evaluation geometry: anomaly maps are
	// upsampled to it and masks are stored at it.
	Size   int
	Images []ImageMap
}

// ImageMap is one image's entry in PixelMaps.
type ImageMap struct {
	// Path is the image's path, as in scores.csv.
	Path string
	// Patches are the patch scores, GridH×GridW, row-major.
	Patches []float32
	// Mask marks defect pixels, Size×Size row-major; nil when the image has
	// no defect pixels.
	Mask []bool
}

// WriteMaps writes m as dir/maps.bin; a failed write leaves no file.
func WriteMaps(dir string, m PixelMaps) error {
	p := filepath.Join(dir, MapsName)
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("write maps: %w", err)
	}
	w := bufio.NewWriter(f)
	err = EncodeMaps(w, m)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// EncodeMaps writes m in the format of maps.bin to w.
func EncodeMaps(w io.Writer, m PixelMaps) error {
	if m.GridH <= 0 || m.GridW <= 0 || m.GridH > maxMapGrid || m.GridW > maxMapGrid || m.Size <= 0 || m.Size > maxMapSize {
		return fmt.Errorf("grid %d×%d, size %d out of range", m.GridH, m.GridW, m.Size)
	}
	le := binary.LittleEndian
	buf := []byte(mapsMagic)
	buf = le.AppendUint32(buf, uint32(m.GridH))
	buf = le.AppendUint32(buf, uint32(m.GridW))
	buf = le.AppendUint32(buf, uint32(m.Size))
	buf = le.AppendUint32(buf, uint32(len(m.Images)))
	if _, err := w.Write(buf); err != nil {
		return err
	}
	for _, im := range m.Images {
		if len(im.Patches) != m.GridH*m.GridW || (im.Mask != nil && len(im.Mask) != m.Size*m.Size) || len(im.Path) > maxPathLen {
			return fmt.Errorf("%s: %d patch scores, %d mask pixels, a path of %d bytes; want %d, %d and at most %d",
				im.Path, len(im.Patches), len(im.Mask), len(im.Path), m.GridH*m.GridW, m.Size*m.Size, maxPathLen)
		}
		buf = le.AppendUint32(buf[:0], uint32(len(im.Path)))
		buf = append(buf, im.Path...)
		for _, v := range im.Patches {
			buf = le.AppendUint32(buf, math.Float32bits(v))
		}
		if im.Mask == nil {
			buf = append(buf, 0)
		} else {
			buf = append(buf, 1)
			buf = append(buf, packBits(im.Mask)...)
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// ReadMaps reads dir/maps.bin. It returns an error wrapping os.ErrNotExist
// when the folder has none (an unlabelled run, or one from an older
// version).
func ReadMaps(dir string) (PixelMaps, error) {
	p := filepath.Join(dir, MapsName)
	b, err := os.ReadFile(p)
	if err != nil {
		return PixelMaps{}, fmt.Errorf("read maps: %w", err)
	}
	m, err := DecodeMaps(b)
	if err != nil {
		return PixelMaps{}, fmt.Errorf("read %s: %w", p, err)
	}
	return m, nil
}

// errShort is a file that ends inside a record.
var errShort = errors.New("truncated")

// DecodeMaps decodes the bytes of a maps.bin file. Every size it reads is
// checked against its limit and against the bytes left before it is
// allocated, so a damaged or crafted file costs no more memory than its
// length.
func DecodeMaps(b []byte) (PixelMaps, error) {
	le := binary.LittleEndian
	if len(b) < len(mapsMagic)+16 || string(b[:len(mapsMagic)]) != mapsMagic {
		return PixelMaps{}, errors.New("not an anomaly maps file (bad header)")
	}
	b = b[len(mapsMagic):]
	gh, gw, size, n := le.Uint32(b), le.Uint32(b[4:]), le.Uint32(b[8:]), le.Uint32(b[12:])
	b = b[16:]
	if gh == 0 || gw == 0 || gh > maxMapGrid || gw > maxMapGrid || size == 0 || size > maxMapSize {
		return PixelMaps{}, fmt.Errorf("grid %d×%d, size %d out of range", gh, gw, size)
	}
	m := PixelMaps{GridH: int(gh), GridW: int(gw), Size: int(size)}
	cells := m.GridH * m.GridW
	maskBytes := (m.Size*m.Size + 7) / 8
	minRecord := 4 + 4*cells + 1
	if uint64(n)*uint64(minRecord) > uint64(len(b)) {
		return PixelMaps{}, fmt.Errorf("%d images claimed, %d bytes hold at most %d: %w", n, len(b), len(b)/minRecord, errShort)
	}
	m.Images = make([]ImageMap, n)
	for i := range m.Images {
		if len(b) < 4 {
			return PixelMaps{}, fmt.Errorf("image %d: %w", i+1, errShort)
		}
		pl := le.Uint32(b)
		b = b[4:]
		if pl > maxPathLen || uint64(pl)+uint64(4*cells)+1 > uint64(len(b)) {
			return PixelMaps{}, fmt.Errorf("image %d: path of %d bytes: %w", i+1, pl, errShort)
		}
		im := &m.Images[i]
		im.Path = string(b[:pl])
		b = b[pl:]
		im.Patches = make([]float32, cells)
		for k := range im.Patches {
			v := math.Float32frombits(le.Uint32(b[4*k:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return PixelMaps{}, fmt.Errorf("image %d (%s): patch score %d is %v", i+1, im.Path, k, v)
			}
			im.Patches[k] = v
		}
		b = b[4*cells:]
		flag := b[0]
		b = b[1:]
		switch flag {
		case 0:
		case 1:
			if len(b) < maskBytes {
				return PixelMaps{}, fmt.Errorf("image %d (%s): mask: %w", i+1, im.Path, errShort)
			}
			im.Mask = unpackBits(b[:maskBytes], m.Size*m.Size)
			b = b[maskBytes:]
		default:
			return PixelMaps{}, fmt.Errorf("image %d (%s): mask flag %d", i+1, im.Path, flag)
		}
	}
	if len(b) != 0 {
		return PixelMaps{}, fmt.Errorf("%d bytes after the last image", len(b))
	}
	return m, nil
}

func packBits(v []bool) []byte {
	out := make([]byte, (len(v)+7)/8)
	for i, on := range v {
		if on {
			out[i/8] |= 1 << (i % 8)
		}
	}
	return out
}

func unpackBits(b []byte, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = b[i/8]&(1<<(i%8)) != 0
	}
	return out
}
