package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"image"
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
	feats, err := enc.EncodeFunc(ctx, n, func(i int) (image.Image, error) {
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
	}, func(e progress.Event) {
		// The encoder reports features; these images are synthetic defects.
		e.Stage = progress.Synthetic
		report.Send(e)
	})
	if err != nil {
		return nil, fmt.Errorf("synthetic defects: %w", err)
	}
	h0, w0 := enc.Grid()
	q := mat.WithCapacity(0, enc.Dim())
	for i, f := range feats {
		for j, flag := range encoder.Filter(masks[i], h0, w0, enc.Config()) {
			if flag {
				q.AppendRow(f.Row(j))
			}
		}
	}
	return q, nil
}

// DirCache is a FeatureCache in a folder: one file per image and
// encoder (raw float32), named by a hash of the encoder id, the path, its size and its
// modification time, so a changed file is encoded again.
type DirCache struct {
	Dir       string
	EncoderID string
}

func (c *DirCache) file(path string) (string, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return "", false
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d", c.EncoderID, path, st.Size(), st.ModTime().UnixNano())
	return filepath.Join(c.Dir, hex.EncodeToString(h.Sum(nil))[:32]+".f32"), true
}

// Get reads cached features of path.
func (c *DirCache) Get(path string) (*mat.Matrix, bool) {
	f, ok := c.file(path)
	if !ok {
		return nil, false
	}
	b, err := os.ReadFile(f)
	if err != nil || len(b) < 8 {
		return nil, false
	}
	rows, cols := int(binary.LittleEndian.Uint32(b)), int(binary.LittleEndian.Uint32(b[4:]))
	if len(b) != 8+4*rows*cols {
		return nil, false
	}
	m := mat.New(rows, cols)
	data := m.RawData()
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[8+4*i:]))
	}
	return m, true
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
	b := make([]byte, 8+4*len(m.RawData()))
	binary.LittleEndian.PutUint32(b, uint32(m.Rows()))
	binary.LittleEndian.PutUint32(b[4:], uint32(m.Cols()))
	for i, v := range m.RawData() {
		binary.LittleEndian.PutUint32(b[8+4*i:], math.Float32bits(v))
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
	return os.Rename(tmp.Name(), f)
}
