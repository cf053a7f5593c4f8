package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"image"
	"io"
	"math"
	"math/rand"
	randv2 "math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/synth"
)

// FeatureCache keeps patch features between runs. Keys are image paths;
// implementations add the encoder id themselves.
type FeatureCache interface {
	Get(path string) (*mat.Matrix, bool)
	Put(path string, m *mat.Matrix) error
}

// shapeCache is a FeatureCache that can tell the shape of cached features
// without decoding them (EncodeToCache only needs the row counts).
type shapeCache interface {
	Shape(path string) (rows, cols int, ok bool)
}

// cachedShape returns the shape of path's cached features: from the
// header where the cache can read it, else by decoding them.
func cachedShape(cache FeatureCache, path string) (rows, cols int, ok bool) {
	if sc, is := cache.(shapeCache); is {
		return sc.Shape(path)
	}
	m, ok := cache.Get(path)
	if !ok {
		return 0, 0, false
	}
	return m.Rows(), m.Cols(), true
}

// Encode returns the patch features of every image in paths, taking what
// the cache has and encoding the rest (which it then stores). cache may be
// nil. report gets progress.Features events counting images.
func Encode(ctx context.Context, enc *encoder.Encoder, paths []string, cache FeatureCache, report progress.Func) ([]*mat.Matrix, error) {
	out := make([]*mat.Matrix, len(paths))
	var todo []int
	for i, p := range paths {
		if cache != nil {
			if m, ok := cache.Get(p); ok && m.Cols() == enc.Dim() {
				out[i] = m
				continue
			}
		}
		todo = append(todo, i)
	}
	cached := len(paths) - len(todo)
	report.Send(progress.Event{Stage: progress.Features, Done: cached, Total: len(paths)})
	if len(todo) == 0 {
		return out, nil
	}
	todoPaths := make([]string, len(todo))
	for k, i := range todo {
		todoPaths[k] = paths[i]
	}
	// The encoder counts only the images not cached; the bar counts all.
	feats, err := enc.EncodeFiles(ctx, todoPaths, func(e progress.Event) {
		e.Done, e.Total = cached+e.Done, len(paths)
		report.Send(e)
	})
	if err != nil {
		return nil, err
	}
	for k, i := range todo {
		out[i] = feats[k]
		if cache != nil {
			if err := cache.Put(paths[i], feats[k]); err != nil {
				return nil, fmt.Errorf("cache features of %s: %w", paths[i], err)
			}
		}
	}
	return out, nil
}

// OODPatches makes out-of-distribution patches for the anomaly bank
// (METHOD.md §2 [ours]: DTD is not available offline): n synthetic defects
// (scratches, stains, textures, cut-and-paste) are painted on normal images
// taken in turn from paths, encoded, and their defect patches kept by
// Filter. report gets progress.Synthetic events counting images.
func OODPatches(ctx context.Context, enc *encoder.Encoder, paths []string, n int, seed int64, report progress.Func) (*mat.Matrix, error) {
	if n <= 0 || len(paths) == 0 {
		return nil, nil
	}
	rng := rand.New(rand.NewSource(seed))
	order := rng.Perm(len(paths))
	masks := make([]*image.Gray, n)
	seeds := make([]int64, n)
	for i := range seeds {
		seeds[i] = rng.Int63()
	}
	var mu sync.Mutex
	h0, w0 := enc.Grid()
	q := mat.WithCapacity(0, enc.Dim())
	done := 0
	// Each image's defect patches are kept as it comes: the features of
	// all n images are never held.
	err := enc.Stream(ctx, n, func(i int) (image.Image, error) {
		p := paths[order[i%len(order)]]
		img, err := imageio.Load(p)
		if err != nil {
			return nil, err
		}
		out, mask, _ := synth.RandomDefect(img, randv2.New(randv2.NewPCG(uint64(seeds[i]), 1)))
		mu.Lock()
		masks[i] = mask
		mu.Unlock()
		return out, nil
	}, func(i int, f *mat.Matrix) error {
		mu.Lock()
		mask := masks[i]
		masks[i] = nil
		mu.Unlock()
		for j, flag := range encoder.Filter(mask, h0, w0, enc.Config()) {
			if flag {
				q.AppendRow(f.Row(j))
			}
		}
		// The encoder reports features; these images are synthetic defects.
		if done++; done%enc.Config().Batch == 0 || done == n {
			report.Send(progress.Event{Stage: progress.Synthetic, Done: done, Total: n})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("synthetic defects: %w", err)
	}
	return q, nil
}

// EncodeToCache makes sure cache holds the features of every image in
// paths, encoding (and storing, image by image as they come) those it
// lacks; nothing is kept in memory. It returns the patch count of each
// image, as cached. report gets progress.Features events counting images.
func EncodeToCache(ctx context.Context, enc *encoder.Encoder, paths []string, cache FeatureCache, report progress.Func) ([]int, error) {
	rows := make([]int, len(paths))
	var todo []int
	for i, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if r, c, ok := cachedShape(cache, p); ok && c == enc.Dim() {
			rows[i] = r
			continue
		}
		todo = append(todo, i)
	}
	cached := len(paths) - len(todo)
	report.Send(progress.Event{Stage: progress.Features, Done: cached, Total: len(paths)})
	if len(todo) == 0 {
		return rows, nil
	}
	done := 0
	err := enc.Stream(ctx, len(todo), func(k int) (image.Image, error) {
		return imageio.Load(paths[todo[k]])
	}, func(k int, f *mat.Matrix) error {
		i := todo[k]
		if err := cache.Put(paths[i], f); err != nil {
			return fmt.Errorf("cache features of %s: %w", paths[i], err)
		}
		rows[i] = f.Rows()
		done++
		if done%enc.Config().Batch == 0 || done == len(todo) {
			report.Send(progress.Event{Stage: progress.Features, Done: cached + done, Total: len(paths)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// CachedImages returns training images whose features are read from cache
// when needed (Image.Load); paths[i] gets ID ids[i], category cats[i] and
// rows[i] patches (as returned by EncodeToCache).
func CachedImages(cache FeatureCache, paths []string, ids []int32, cats []string, rows []int) []Image {
	out := make([]Image, len(paths))
	for i, p := range paths {
		out[i] = Image{ID: ids[i], Category: cats[i], Patches: rows[i], Load: func() (*mat.Matrix, error) {
			m, ok := cache.Get(p)
			if !ok {
				return nil, fmt.Errorf("features of %s are no longer in the cache", p)
			}
			return m, nil
		}}
	}
	return out
}

// DirCache is a FeatureCache in a folder: one file per image and
// encoder, named by a hash of the encoder id, the path, its size and its
// modification time, so a changed file is encoded again. Features are
// stored as float32 (".f32"), or as IEEE float16 (".f16": half the disk
// and I/O) with Float16 set. A cache of either kind is read whatever the
// setting. float16 is not the default: on the benchmark it moved PatchCore's
// image AUROC by 0.0013 (magnetic_tile, 200 training images), more than the
// 0.001 allowed.
type DirCache struct {
	Dir       string
	EncoderID string
	// Float16 stores new features as float16.
	Float16 bool
}

// File encodings: a header of rows and cols (uint32 LE), then the values
// (little-endian float32 or float16).
const (
	extF32 = ".f32"
	extF16 = ".f16"
)

func (c *DirCache) file(path string) (string, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return "", false
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d", c.EncoderID, path, st.Size(), st.ModTime().UnixNano())
	return filepath.Join(c.Dir, hex.EncodeToString(h.Sum(nil))[:32]), true
}

// readOrder is the order the encodings are tried in: the preferred one
// first.
func (c *DirCache) readOrder() []string {
	if c.Float16 {
		return []string{extF16, extF32}
	}
	return []string{extF32, extF16}
}

// Get reads cached features of path (either encoding, the preferred first).
func (c *DirCache) Get(path string) (*mat.Matrix, bool) {
	f, ok := c.file(path)
	if !ok {
		return nil, false
	}
	exts := c.readOrder()
	for _, ext := range exts {
		if m, err := readCacheFile(f + ext); err == nil {
			return m, true
		}
	}
	return nil, false
}

// Shape returns the shape of path's cached features from the file's
// header, checked against its size as Get checks it, without reading the
// values.
func (c *DirCache) Shape(path string) (rows, cols int, ok bool) {
	f, ok := c.file(path)
	if !ok {
		return 0, 0, false
	}
	exts := c.readOrder()
	for _, ext := range exts {
		if rows, cols, err := cacheFileShape(f + ext); err == nil {
			return rows, cols, true
		}
	}
	return 0, 0, false
}

// cacheFileShape reads one cache file's header and checks it against the
// file's size.
func cacheFileShape(name string) (rows, cols int, err error) {
	fh, err := os.Open(name)
	if err != nil {
		return 0, 0, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return 0, 0, err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(fh, hdr[:]); err != nil {
		return 0, 0, fmt.Errorf("feature cache %s: truncated", name)
	}
	return checkCacheShape(name, hdr[:], st.Size())
}

// checkCacheShape validates a cache file's header (rows, cols) against its
// size in bytes; the extension of name says the value width.
func checkCacheShape(name string, hdr []byte, size int64) (rows, cols int, err error) {
	width := int64(4)
	if filepath.Ext(name) == extF16 {
		width = 2
	}
	r, c := int64(binary.LittleEndian.Uint32(hdr)), int64(binary.LittleEndian.Uint32(hdr[4:]))
	if c <= 0 || (size-8)%(width*c) != 0 || (size-8)/(width*c) != r {
		return 0, 0, fmt.Errorf("feature cache %s: %d bytes for %d×%d values", name, size, r, c)
	}
	return int(r), int(c), nil
}

// readCacheFile decodes one cache file; its extension says the encoding.
func readCacheFile(name string) (*mat.Matrix, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if len(b) < 8 {
		return nil, fmt.Errorf("feature cache %s: truncated", name)
	}
	width := 4
	if filepath.Ext(name) == extF16 {
		width = 2
	}
	rows, cols, err := checkCacheShape(name, b[:8], int64(len(b)))
	if err != nil {
		return nil, err
	}
	m := mat.New(rows, cols)
	data := m.RawData()
	p := b[8:]
	if width == 2 {
		for i := range data {
			data[i] = mat.Float32From16(binary.LittleEndian.Uint16(p[2*i:]))
		}
	} else {
		for i := range data {
			data[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
		}
	}
	return m, nil
}

// Put stores features of path (atomically: temp file + rename).
func (c *DirCache) Put(path string, m *mat.Matrix) error {
	f, ok := c.file(path)
	if !ok {
		return fmt.Errorf("stat %s", path)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	width, ext := 4, extF32
	if c.Float16 {
		width, ext = 2, extF16
	}
	b := make([]byte, 8+width*len(m.RawData()))
	binary.LittleEndian.PutUint32(b, uint32(m.Rows()))
	binary.LittleEndian.PutUint32(b[4:], uint32(m.Cols()))
	p := b[8:]
	for i, v := range m.RawData() {
		if width == 2 {
			binary.LittleEndian.PutUint16(p[2*i:], mat.Float16(v))
		} else {
			binary.LittleEndian.PutUint32(p[4*i:], math.Float32bits(v))
		}
	}
	tmp, err := os.CreateTemp(c.Dir, "tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), f+ext)
}
