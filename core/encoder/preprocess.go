package encoder

import (
	"image"

	"golang.org/x/image/draw"
)

// geometry is where an image of size w×h lands in the network input: the
// whole image is scaled to the rectangle dr (in input coordinates) and the
// input shows [0, S)×[0, S) of it. Without Crop dr is the input itself.
func geometry(w, h int, cfg Config) image.Rectangle {
	s := cfg.InputSize
	if !cfg.Crop {
		return image.Rect(0, 0, s, s)
	}
	// torchvision Resize(int): the shorter side becomes ResizeTo, the longer
	// int(ResizeTo·long/short); CenterCrop: offset int(round((len−S)/2)).
	r := cfg.ResizeTo
	rw, rh := r, r
	if w < h {
		rh = int(float64(r) * float64(h) / float64(w))
	} else if h < w {
		rw = int(float64(r) * float64(w) / float64(h))
	}
	left := int((float64(rw-s))/2 + 0.5)
	top := int((float64(rh-s))/2 + 0.5)
	return image.Rect(-left, -top, rw-left, rh-top)
}

// resizeRGBA renders img into an S×S RGBA image with the encoder's geometry,
// using a bilinear filter that widens its support when it shrinks (so that
// downscaling averages instead of aliasing, like PIL's antialiased resize).
func resizeRGBA(img image.Image, cfg Config) *image.RGBA {
	s := cfg.InputSize
	dst := image.NewRGBA(image.Rect(0, 0, s, s))
	b := img.Bounds()
	draw.BiLinear.Scale(dst, geometry(b.Dx(), b.Dy(), cfg), img, b, draw.Src, nil)
	return dst
}

// channelAffine is the per-channel map v = x·a + b from 0..255 pixel values
// to network input values, in the network's channel order.
type channelAffine struct {
	a, b [3]float32
	src  [3]int // RGBA byte offset feeding network channel c
}

func newChannelAffine(card *Card) channelAffine {
	var ca channelAffine
	for c := 0; c < 3; c++ {
		ca.src[c] = c
		if card.Color == "BGR" {
			ca.src[c] = 2 - c
		}
		n := card.Normalize
		if len(n.Mean) == 3 && len(n.Std) == 3 {
			// The network's channel c holds colour ca.src[c]; mean and std
			// are listed in the network's channel order.
			ca.a[c] = float32(1 / (255 * n.Std[c]))
			ca.b[c] = float32(-n.Mean[c] / n.Std[c])
		} else {
			ca.a[c] = float32(n.Scale)
			ca.b[c] = float32(n.Offset)
		}
	}
	return ca
}

// fill writes the S×S RGBA image into dst (3·S·S values) in the card's
// layout and channel order, normalised.
func (ca *channelAffine) fill(dst []float32, rgba *image.RGBA, nhwc bool) {
	s := rgba.Rect.Dx()
	plane := s * s
	for y := 0; y < s; y++ {
		row := rgba.Pix[y*rgba.Stride : y*rgba.Stride+4*s]
		if nhwc {
			out := dst[3*y*s : 3*(y+1)*s]
			for x := 0; x < s; x++ {
				px := row[4*x : 4*x+4]
				out[3*x] = float32(px[ca.src[0]])*ca.a[0] + ca.b[0]
				out[3*x+1] = float32(px[ca.src[1]])*ca.a[1] + ca.b[1]
				out[3*x+2] = float32(px[ca.src[2]])*ca.a[2] + ca.b[2]
			}
			continue
		}
		for c := 0; c < 3; c++ {
			out := dst[c*plane+y*s : c*plane+(y+1)*s]
			a, b, o := ca.a[c], ca.b[c], ca.src[c]
			for x := range out {
				out[x] = float32(row[4*x+o])*a + b
			}
		}
	}
}
