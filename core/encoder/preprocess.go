package encoder

import "image"

// Geometry is where an image of size w×h lands in the network input: the
// whole image is scaled onto the returned rectangle (in input pixel
// coordinates) and the input shows [0, S)×[0, S) of it. Without Crop the
// rectangle is the input itself; with Crop it is larger and starts at a
// negative offset (torchvision Resize(ResizeTo) + CenterCrop(InputSize)).
// Use it to map input (or patch-grid) positions back to image pixels.
func (cfg Config) Geometry(w, h int) image.Rectangle {
	cfg = cfg.WithDefaults()
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

// fill writes an S×S image of interleaved R, G, B values in 0..255 (from
// resample) into dst (3·S·S values) in the card's layout and channel order,
// normalised.
func (ca *channelAffine) fill(dst, rgb []float32, s int, nhwc bool) {
	plane := s * s
	if nhwc {
		for i := 0; i < plane; i++ {
			px := rgb[3*i : 3*i+3]
			dst[3*i] = px[ca.src[0]]*ca.a[0] + ca.b[0]
			dst[3*i+1] = px[ca.src[1]]*ca.a[1] + ca.b[1]
			dst[3*i+2] = px[ca.src[2]]*ca.a[2] + ca.b[2]
		}
		return
	}
	for c := 0; c < 3; c++ {
		out := dst[c*plane : (c+1)*plane]
		a, b, o := ca.a[c], ca.b[c], ca.src[c]
		for i := range out {
			out[i] = rgb[3*i+o]*a + b
		}
	}
}
