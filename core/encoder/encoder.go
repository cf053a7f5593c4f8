package encoder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"runtime"
	"sync"

	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/progress"
)

// aggregationVersion changes whenever the features an Encoder computes for
// the same backbone and Config change; it is part of ID.
const aggregationVersion = 1

// Encoder computes patch features with one ONNX Runtime session. Its
// methods may be called from several goroutines; inference runs are
// serialised.
type Encoder struct {
	card   *Card
	cfg    Config
	h0, w0 int
	dim    int
	id     string
	affine channelAffine

	mu   sync.Mutex // guards sess and in
	sess *ort.Session
	in   []float32 // batch input buffer, Batch·3·S·S
}

// New builds the feature graph for card and backbone, checks that every
// feature map has the size its stride promises (one probe run at
// cfg.InputSize), and opens the inference session on rt.
func New(rt *ort.Runtime, card *Card, backbone []byte, cfg Config) (*Encoder, error) {
	card, err := card.validated()
	if err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(card); err != nil {
		return nil, err
	}
	if err := probe(rt, card, backbone, cfg); err != nil {
		return nil, err
	}
	model, err := BuildFeatureGraph(card, backbone, cfg)
	if err != nil {
		return nil, err
	}
	sess, err := rt.NewSession(model, []string{card.Input}, []string{OutputName})
	if err != nil {
		return nil, fmt.Errorf("encoder session for %s: %w", card.Name, err)
	}
	s := cfg.InputSize / card.FinestStride()
	e := &Encoder{
		card:   card,
		cfg:    cfg,
		h0:     s,
		w0:     s,
		dim:    cfg.OutDim(card),
		affine: newChannelAffine(card),
		sess:   sess,
		in:     make([]float32, cfg.Batch*3*cfg.InputSize*cfg.InputSize),
	}
	e.id = featureID(card, backbone, cfg)
	return e, nil
}

// probe runs the backbone cut at its feature tensors on one zero image and
// checks each map's shape against the card.
func probe(rt *ort.Runtime, card *Card, backbone []byte, cfg Config) error {
	model, err := buildProbeGraph(card, backbone, cfg)
	if err != nil {
		return err
	}
	names := make([]string, len(card.FeatureTensors))
	for i, f := range card.FeatureTensors {
		names[i] = f.Tensor
	}
	sess, err := rt.NewSession(model, []string{card.Input}, names)
	if err != nil {
		return fmt.Errorf("probe backbone %s: %w", card.Name, err)
	}
	defer sess.Close()
	s := int64(cfg.InputSize)
	shape := []int64{1, 3, s, s}
	if card.Layout == "NHWC" {
		shape = []int64{1, s, s, 3}
	}
	outs, err := sess.Run(ort.F32Tensor(make([]float32, 3*s*s), shape...))
	if err != nil {
		return fmt.Errorf("probe backbone %s at %d×%d: %w", card.Name, s, s, err)
	}
	for i, f := range card.FeatureTensors {
		sh := outs[i].Shape
		if len(sh) != 4 {
			return fmt.Errorf("backbone card %s: feature tensor %q has shape %v, want a 4-D map", card.Name, f.Tensor, sh)
		}
		c, h, w := sh[1], sh[2], sh[3]
		if f.Layout == "NHWC" {
			h, w, c = sh[1], sh[2], sh[3]
		}
		want := s / int64(f.Stride)
		if h != want || w != want {
			return fmt.Errorf("backbone card %s: feature tensor %q is %d×%d at input %d, but stride %d needs %d×%d (actual stride %.3g)",
				card.Name, f.Tensor, h, w, s, f.Stride, want, want, float64(s)/float64(h))
		}
		if c != int64(f.Channels) {
			return fmt.Errorf("backbone card %s: feature tensor %q has %d channels, card says %d", card.Name, f.Tensor, c, f.Channels)
		}
	}
	return nil
}

// featureID hashes everything that determines the features.
func featureID(card *Card, backbone []byte, cfg Config) string {
	sum := sha256.Sum256(backbone)
	type tensor struct {
		Tensor   string
		Stride   int
		Channels int
		Layout   string
	}
	key := struct {
		Version   int
		Backbone  string
		Input     string
		Layout    string
		Color     string
		Scale     float64
		Offset    float64
		Mean, Std []float64
		Tensors   []tensor
		Size      int
		Crop      bool
		ResizeTo  int
		Dim       int
	}{
		Version: aggregationVersion, Backbone: hex.EncodeToString(sum[:]), Input: card.Input,
		Layout: card.Layout, Color: card.Color, Scale: card.Normalize.Scale, Offset: card.Normalize.Offset,
		Mean: card.Normalize.Mean, Std: card.Normalize.Std, Size: cfg.InputSize, Crop: cfg.Crop, Dim: cfg.Dim,
	}
	if cfg.Crop {
		key.ResizeTo = cfg.ResizeTo
	}
	for _, f := range card.FeatureTensors {
		key.Tensors = append(key.Tensors, tensor{f.Tensor, f.Stride, f.Channels, f.Layout})
	}
	b, _ := json.Marshal(key) // plain data: cannot fail
	h := sha256.Sum256(b)
	return fmt.Sprintf("%s-%s", card.Name, hex.EncodeToString(h[:10]))
}

// ID is a stable identifier of the features this encoder computes: the card
// name and a hash of the backbone's sha256, the input geometry, the
// normalisation, the feature tensors, the output dimension and the
// aggregation version. Use it as the feature-cache key.
func (e *Encoder) ID() string { return e.id }

// Grid is the patch grid H0×W0 (InputSize / finest stride).
func (e *Encoder) Grid() (h0, w0 int) { return e.h0, e.w0 }

// Dim is the feature dimension C of every patch.
func (e *Encoder) Dim() int { return e.dim }

// Config is the encoder's configuration, defaults filled in.
func (e *Encoder) Config() Config { return e.cfg }

// Card is the encoder's backbone card: a validated copy; do not modify it.
func (e *Encoder) Card() *Card { return e.card }

// InputLen is the number of float32 values Preprocess returns for one image.
func (e *Encoder) InputLen() int { return 3 * e.cfg.InputSize * e.cfg.InputSize }

// Preprocess turns img into the network input of one image: resized (and
// centre-cropped with Crop) to InputSize×InputSize with a bilinear filter
// that averages when it shrinks (PIL-style antialiasing), in the card's
// layout and colour order, normalised. Values are not rounded to 8 bits.
// Greyscale images are replicated to three channels; transparent pixels
// count as black.
func (e *Encoder) Preprocess(img image.Image) []float32 {
	dst := make([]float32, e.InputLen())
	e.preprocessInto(dst, img)
	return dst
}

func (e *Encoder) preprocessInto(dst []float32, img image.Image) {
	s := e.cfg.InputSize
	rgb := make([]float32, 3*s*s)
	resample(rgb, img, e.cfg, 3)
	e.affine.fill(dst, rgb, s, e.card.Layout == "NHWC")
}

// Encode computes the patch features of imgs, cfg.Batch images per run. Each
// result is an H0·W0 × C matrix, rows in raster order of the patch grid.
func (e *Encoder) Encode(ctx context.Context, imgs []image.Image) ([]*mat.Matrix, error) {
	return e.run(ctx, len(imgs), func(i int) (image.Image, error) {
		if imgs[i] == nil {
			return nil, fmt.Errorf("encode: image %d is nil", i)
		}
		return imgs[i], nil
	}, nil)
}

// EncodeFiles loads the images at paths (imageio.Load) and encodes them;
// decoding and preprocessing run in parallel with inference. report, when
// not nil, gets a progress.Features event after every batch counting the
// images done.
func (e *Encoder) EncodeFiles(ctx context.Context, paths []string, report progress.Func) ([]*mat.Matrix, error) {
	return e.run(ctx, len(paths), func(i int) (image.Image, error) {
		return imageio.Load(paths[i])
	}, report)
}

// EncodeFunc encodes n images obtained from get (called concurrently, from
// several goroutines, once per index); see EncodeFiles.
func (e *Encoder) EncodeFunc(ctx context.Context, n int, get func(i int) (image.Image, error), report progress.Func) ([]*mat.Matrix, error) {
	return e.run(ctx, n, get, report)
}

// Stream encodes n images obtained from get (called concurrently, once per
// index) and hands each image's features to sink, in index order, from the
// calling goroutine, as soon as its batch is done; nothing is kept, so a
// caller can reduce or store features of any number of images. An error
// from sink stops the stream and is returned.
func (e *Encoder) Stream(ctx context.Context, n int, get func(i int) (image.Image, error), sink func(i int, f *mat.Matrix) error) error {
	return e.stream(ctx, n, get, sink)
}

type prepared struct {
	data []float32
	err  error
}

// run collects the stream's features.
func (e *Encoder) run(ctx context.Context, n int, get func(i int) (image.Image, error), report progress.Func) ([]*mat.Matrix, error) {
	if n == 0 {
		return nil, nil
	}
	out := make([]*mat.Matrix, 0, n)
	err := e.stream(ctx, n, get, func(i int, f *mat.Matrix) error {
		out = append(out, f)
		if report != nil && (len(out)%e.cfg.Batch == 0 || len(out) == n) {
			report(progress.Event{Stage: progress.Features, Done: len(out), Total: n})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// stream is the pipeline: workers decode and preprocess images ahead of the
// inference loop, within a window of a few batches.
func (e *Encoder) stream(ctx context.Context, n int, get func(i int) (image.Image, error), sink func(i int, f *mat.Matrix) error) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batch := e.cfg.Batch
	workers := min(max(runtime.GOMAXPROCS(0), 1), 8, n)
	window := min(2*batch+workers, n)
	free := make(chan []float32, window)
	for range window {
		free <- make([]float32, e.InputLen())
	}
	ready := make([]chan prepared, n)
	for i := range ready {
		ready[i] = make(chan prepared, 1)
	}
	// The feeder hands out buffers in index order, so the oldest image not
	// yet consumed always holds one and the window cannot deadlock.
	type job struct {
		i   int
		buf []float32
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1 + workers)
	go func() {
		defer wg.Done()
		defer close(jobs)
		for i := range n {
			var buf []float32
			select {
			case <-ctx.Done():
				return
			case buf = <-free:
			}
			select {
			case <-ctx.Done():
				return
			case jobs <- job{i, buf}:
			}
		}
	}()
	for range workers {
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := ctx.Err(); err != nil {
					ready[j.i] <- prepared{err: err}
					continue
				}
				img, err := get(j.i)
				if err != nil {
					ready[j.i] <- prepared{err: err}
					continue
				}
				e.preprocessInto(j.buf, img)
				ready[j.i] <- prepared{data: j.buf}
			}
		}()
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sess == nil {
		return fmt.Errorf("encode with %s: encoder is closed", e.card.Name)
	}
	per := e.InputLen()
	for start := 0; start < n; start += batch {
		m := min(batch, n-start)
		for k := 0; k < m; k++ {
			var p prepared
			select {
			case <-ctx.Done():
				return fmt.Errorf("encode: %w", ctx.Err())
			case p = <-ready[start+k]:
			}
			if p.err != nil {
				return fmt.Errorf("encode image %d: %w", start+k, p.err)
			}
			copy(e.in[k*per:(k+1)*per], p.data)
			free <- p.data
		}
		ms, err := e.infer(m)
		if err != nil {
			return err
		}
		for k, f := range ms {
			if err := sink(start+k, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// infer runs the session on the first m images of e.in.
func (e *Encoder) infer(m int) ([]*mat.Matrix, error) {
	s := int64(e.cfg.InputSize)
	shape := []int64{int64(m), 3, s, s}
	if e.card.Layout == "NHWC" {
		shape = []int64{int64(m), s, s, 3}
	}
	outs, err := e.sess.Run(ort.F32Tensor(e.in[:m*e.InputLen()], shape...))
	if err != nil {
		return nil, fmt.Errorf("encode with %s: %w", e.card.Name, err)
	}
	o := outs[0]
	np := e.h0 * e.w0
	if len(o.Shape) != 3 || o.Shape[0] != int64(m) || o.Shape[1] != int64(np) || o.Shape[2] != int64(e.dim) {
		return nil, fmt.Errorf("encode with %s: output shape %v, want [%d %d %d]", e.card.Name, o.Shape, m, np, e.dim)
	}
	ms := make([]*mat.Matrix, m)
	per := np * e.dim
	for k := range ms {
		var err error
		if ms[k], err = mat.FromData(np, e.dim, o.F32[k*per:(k+1)*per:(k+1)*per]); err != nil {
			return nil, fmt.Errorf("encode with %s: %w", e.card.Name, err)
		}
	}
	return ms, nil
}

// Close frees the inference session.
func (e *Encoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sess == nil {
		return nil
	}
	err := e.sess.Close()
	e.sess = nil
	return err
}
