package synth

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/dmad/workstation/core/progress"
)

// DatasetOptions sizes a synthetic dataset. Zero fields take the defaults
// in brackets.
type DatasetOptions struct {
	Categories            int   // number of categories [3]; see CategoryNames
	TrainPerCategory      int   // normal training images per category [20]
	TestGoodPerCategory   int   // normal test images per category [6]
	TestDefectPerCategory int   // defective test images per category, spread over Kinds [8]
	Size                  int   // image side in pixels [96]
	Seed                  int64 // the same seed writes the same files
}

func (o DatasetOptions) withDefaults() DatasetOptions {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Categories, 3)
	def(&o.TrainPerCategory, 20)
	def(&o.TestGoodPerCategory, 6)
	def(&o.TestDefectPerCategory, 8)
	def(&o.Size, 96)
	return o
}

// surfaceNames are the category looks, in the order categories are named.
// surfaceCount is the number of distinct synthetic looks.
const surfaceCount = 5

func surfaceNames() [surfaceCount]string {
	return [surfaceCount]string{"tile", "disc", "fabric", "wood", "grid"}
}

// CategoryNames returns the names of the first n synthetic categories:
// "tile" (textured stone surface), "disc" (a round object on a
// background), "fabric" (woven pattern), "wood" (grain), "grid" (pads on a
// board), then the same looks in other colours as "tile2", "disc2", ….
func CategoryNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		looks := surfaceNames()
		out[i] = looks[i%len(looks)]
		if r := i / len(looks); r > 0 {
			out[i] += fmt.Sprint(r + 1)
		}
	}
	return out
}

// WriteDataset writes a tiny synthetic dataset in the MVTec AD layout under
// dir: <category>/train/good/NNN.png, <category>/test/good/NNN.png,
// <category>/test/<kind>/NNN.png and <category>/ground_truth/<kind>/NNN_mask.png,
// with the defect kinds of Kinds round-robin. Normal images of a category
// share a look with small natural variation. The output is a pure function
// of opts.
func WriteDataset(dir string, opts DatasetOptions) error {
	return WriteDatasetContext(context.Background(), dir, opts, nil)
}

// WriteDatasetContext is WriteDataset with cancellation; report (may be
// nil) gets a progress.Synthetic event after each image.
func WriteDatasetContext(ctx context.Context, dir string, opts DatasetOptions, report progress.Func) error {
	opts = opts.withDefaults()
	names := CategoryNames(opts.Categories)
	perCat := opts.TrainPerCategory + opts.TestGoodPerCategory + opts.TestDefectPerCategory
	total, done := perCat*len(names), 0
	enc := &png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &bufferPool{}}
	for ci, cat := range names {
		look := newSurface(ci, opts.Seed)
		// stream: 0 train, 1 test good, 2+kind defects.
		write := func(split, typ string, stream, i int, kind Kind, defect bool) error {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("write synthetic dataset: %w", err)
			}
			// One generator per image: files do not depend on the order of writing.
			rng := rand.New(rand.NewPCG(uint64(opts.Seed), uint64(ci)<<40|uint64(stream)<<32|uint64(i)))
			var img image.Image = look(rng, opts.Size)
			name := fmt.Sprintf("%03d", i)
			if defect {
				out, mask := Defect(img, rng, kind)
				if err := writePNG(enc, filepath.Join(dir, cat, "ground_truth", typ, name+"_mask.png"), mask); err != nil {
					return err
				}
				img = out
			}
			if err := writePNG(enc, filepath.Join(dir, cat, split, typ, name+".png"), img); err != nil {
				return err
			}
			done++
			report.Send(progress.Event{Stage: progress.Synthetic, Done: done, Total: total})
			return nil
		}
		for i := range opts.TrainPerCategory {
			if err := write("train", "good", 0, i, 0, false); err != nil {
				return err
			}
		}
		for i := range opts.TestGoodPerCategory {
			if err := write("test", "good", 1, i, 0, false); err != nil {
				return err
			}
		}
		kinds := Kinds()
		for i := range opts.TestDefectPerCategory {
			k := kinds[i%len(kinds)]
			if err := write("test", k.String(), 2+int(k), i, k, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// bufferPool keeps one PNG encoder buffer (with its compressor) for reuse
// by one sequential writer.
type bufferPool struct{ buf *png.EncoderBuffer }

// Get returns the kept buffer, if any.
func (p *bufferPool) Get() *png.EncoderBuffer { b := p.buf; p.buf = nil; return b }

// Put keeps b for the next Get.
func (p *bufferPool) Put(b *png.EncoderBuffer) { p.buf = b }

func writePNG(enc *png.Encoder, path string, img image.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	bw := bufio.NewWriter(f)
	if err := enc.Encode(bw, img); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// surface draws one normal image of a category.
type surface func(rng *rand.Rand, size int) *image.RGBA

// newSurface returns the look of category ci; the palette depends on the
// category index and the dataset seed, the variation on the image's rng.
func newSurface(ci int, seed int64) surface {
	prng := rand.New(rand.NewPCG(uint64(seed)^0x5eed, uint64(ci)))
	base := [3]float64{span(prng, 90, 200), span(prng, 90, 200), span(prng, 90, 200)}
	accent := [3]float64{span(prng, 20, 100), span(prng, 20, 100), span(prng, 20, 100)}
	paint := func(size int, f func(x, y float64) float64) *image.RGBA {
		img := image.NewRGBA(image.Rect(0, 0, size, size))
		for y := range size {
			for x := range size {
				t := f(float64(x), float64(y))
				i := img.PixOffset(x, y)
				for c := range 3 {
					img.Pix[i+c] = clamp8(accent[c] + (base[c]-accent[c])*t)
				}
				img.Pix[i+3] = 255
			}
		}
		return img
	}
	switch ci % surfaceCount {
	case 0: // tile: stone-like value noise with fine grain
		return func(rng *rand.Rand, size int) *image.RGBA {
			coarse := valueNoise(rng, float64(size)/8)
			fine := valueNoise(rng, 2)
			return paint(size, func(x, y float64) float64 {
				return 0.35 + 0.45*coarse(x, y) + 0.2*fine(x, y)
			})
		}
	case 1: // disc: a shaded round object with a ring on a smooth background
		return func(rng *rand.Rand, size int) *image.RGBA {
			s := float64(size)
			cx, cy := s/2+span(rng, -0.03, 0.03)*s, s/2+span(rng, -0.03, 0.03)*s
			r := s * span(rng, 0.3, 0.33)
			grain := valueNoise(rng, 3)
			return paint(size, func(x, y float64) float64 {
				d := math.Hypot(x+0.5-cx, y+0.5-cy) / r
				bg := 0.85 + 0.1*y/s
				switch {
				case d > 1:
					return bg + 0.03*grain(x, y)
				case d > 0.8:
					return 0.15
				default:
					return 0.45 + 0.25*(1-d) + 0.05*grain(x, y)
				}
			})
		}
	case 2: // fabric: plain weave, threads alternating over and under
		return func(rng *rand.Rand, size int) *image.RGBA {
			period := math.Max(4, float64(size)/span(rng, 11, 13))
			px, py := span(rng, 0, period), span(rng, 0, period)
			fuzz := valueNoise(rng, 2)
			return paint(size, func(x, y float64) float64 {
				u, v := (x+px)/period, (y+py)/period
				over := (int(math.Floor(u))+int(math.Floor(v)))&1 == 0
				var t float64
				if over {
					t = 0.5 + 0.5*math.Sin(math.Pi*(u-math.Floor(u)))
				} else {
					t = 0.3 + 0.5*math.Sin(math.Pi*(v-math.Floor(v)))
				}
				return 0.15 + 0.7*t + 0.15*fuzz(x, y)
			})
		}
	case 3: // wood: wavy grain stripes
		return func(rng *rand.Rand, size int) *image.RGBA {
			warp := valueNoise(rng, float64(size)/4)
			period := float64(size) / span(rng, 7, 9)
			off := span(rng, 0, period)
			return paint(size, func(x, y float64) float64 {
				return 0.5 + 0.35*math.Sin(2*math.Pi*(x+off+0.3*period*4*warp(x, y))/period)
			})
		}
	default: // grid: square pads on a board
		return func(rng *rand.Rand, size int) *image.RGBA {
			pitch := float64(size) / 6
			ox, oy := span(rng, -1, 1), span(rng, -1, 1)
			noise := valueNoise(rng, 4)
			return paint(size, func(x, y float64) float64 {
				u, v := math.Mod(x+ox+pitch, pitch)/pitch, math.Mod(y+oy+pitch, pitch)/pitch
				t := 0.3
				if u > 0.25 && u < 0.75 && v > 0.25 && v < 0.75 {
					t = 0.95
				}
				return t + 0.05*noise(x, y)
			})
		}
	}
}
