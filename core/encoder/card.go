// Package encoder turns images into patch features (METHOD.md §1): it reads
// backbone cards, preprocesses images, cuts the backbone ONNX graph at the
// card's feature tensors and appends the PatchCore-style aggregation (3×3
// local average, bilinear upsampling to the stride-8 grid, channel concat,
// optional channel reduction), runs it on ONNX Runtime, and maps defect masks
// to patch flags (Filter).
package encoder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Card describes a backbone ONNX file: what it expects as input and which
// intermediate tensors are the feature maps. It is stored as JSON beside the
// file (see assets/backbones and ../shared/models).
type Card struct {
	// Name identifies the backbone (e.g. "mobilenet_v2_imagenet").
	Name string `json:"name"`
	// Description is free text for people.
	Description string `json:"description,omitempty"`
	// File is the ONNX file name, relative to the card.
	File string `json:"file,omitempty"`
	// SHA256 is the hex digest of the ONNX file; empty means unchecked.
	SHA256 string `json:"sha256,omitempty"`
	// URL is where `workstation backbone pull` may download the file from.
	URL string `json:"url,omitempty"`
	// Input is the name of the graph's image input.
	Input string `json:"input"`
	// Layout of the input tensor: "NCHW" (default) or "NHWC".
	Layout string `json:"layout,omitempty"`
	// Color order of the input channels: "RGB" (default) or "BGR".
	Color string `json:"color,omitempty"`
	// Normalize maps 0..255 pixel values to the network's input range.
	Normalize Normalize `json:"normalize"`
	// NativeSize is the input size the network was trained at.
	NativeSize int `json:"native_size,omitempty"`
	// FeatureTensors are the feature maps, finest first by convention; the
	// aggregation concatenates them in this order.
	FeatureTensors []FeatureTensor `json:"feature_tensors"`
	// Preprocess records the preprocessing the card recommends.
	Preprocess *Preprocess `json:"preprocess,omitempty"`
	// OtherTensors names further tensors of interest (documentation only).
	OtherTensors map[string]string `json:"other_tensors,omitempty"`
	// License and Source document where the weights come from.
	License string `json:"license,omitempty"`
	Source  string `json:"source,omitempty"`
}

// Normalize maps a pixel value x in 0..255 of channel c to the network input:
// (x/255 − Mean[c]) / Std[c] when Mean and Std are set (torchvision style),
// otherwise x·Scale + Offset.
type Normalize struct {
	Scale  float64   `json:"scale,omitempty"`
	Offset float64   `json:"offset,omitempty"`
	Mean   []float64 `json:"mean,omitempty"`
	Std    []float64 `json:"std,omitempty"`
	Note   string    `json:"note,omitempty"`
}

// FeatureTensor is one feature map the encoder taps.
type FeatureTensor struct {
	// Tensor is the value name in the ONNX graph.
	Tensor string `json:"tensor"`
	// Stride is the map's downsampling factor relative to the input.
	Stride int `json:"stride"`
	// Channels is the map's channel count.
	Channels int `json:"channels"`
	// Layout of the map: "NCHW" (default) or "NHWC".
	Layout string `json:"layout,omitempty"`
	// Note is free text.
	Note string `json:"note,omitempty"`
}

// Preprocess is the card's recommended geometry: resize to Resize (w, h),
// then centre-crop to Crop when it is set.
type Preprocess struct {
	Resize []int  `json:"resize,omitempty"`
	Crop   []int  `json:"crop,omitempty"`
	Note   string `json:"note,omitempty"`
}

// UnmarshalJSON accepts crop as null, a number or a [w, h] pair.
func (p *Preprocess) UnmarshalJSON(data []byte) error {
	var raw struct {
		Resize json.RawMessage `json:"resize"`
		Crop   json.RawMessage `json:"crop"`
		Note   string          `json:"note"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	p.Note = raw.Note
	var err error
	if p.Resize, err = sizePair(raw.Resize); err != nil {
		return fmt.Errorf("resize: %w", err)
	}
	if p.Crop, err = sizePair(raw.Crop); err != nil {
		return fmt.Errorf("crop: %w", err)
	}
	return nil
}

func sizePair(m json.RawMessage) ([]int, error) {
	m = bytes.TrimSpace(m)
	if len(m) == 0 || string(m) == "null" {
		return nil, nil
	}
	var n int
	if err := json.Unmarshal(m, &n); err == nil {
		return []int{n, n}, nil
	}
	var v []int
	if err := json.Unmarshal(m, &v); err != nil {
		return nil, err
	}
	if len(v) == 1 {
		v = []int{v[0], v[0]}
	}
	if len(v) != 2 {
		return nil, fmt.Errorf("want a size or [w, h], got %s", m)
	}
	return v, nil
}

// ParseCard decodes and validates a card.
func ParseCard(data []byte) (*Card, error) {
	c := &Card{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("parse backbone card: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadCard reads and validates the card at path.
func LoadCard(path string) (*Card, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load backbone card: %w", err)
	}
	c, err := ParseCard(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate checks that the card is complete and consistent. Empty Layout and
// Color are set to their defaults (NCHW, RGB).
func (c *Card) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if strings.TrimSpace(c.Name) == "" {
		bad("no name")
	}
	if c.Input == "" {
		bad("no input tensor name")
	}
	c.Layout = strings.ToUpper(c.Layout)
	if c.Layout == "" {
		c.Layout = "NCHW"
	}
	if c.Layout != "NCHW" && c.Layout != "NHWC" {
		bad("layout %q: want NCHW or NHWC", c.Layout)
	}
	c.Color = strings.ToUpper(c.Color)
	if c.Color == "" {
		c.Color = "RGB"
	}
	if c.Color != "RGB" && c.Color != "BGR" {
		bad("color %q: want RGB or BGR", c.Color)
	}
	if c.SHA256 != "" {
		if b, err := hex.DecodeString(c.SHA256); err != nil || len(b) != sha256.Size {
			bad("sha256 %q is not 64 hex digits", c.SHA256)
		}
		c.SHA256 = strings.ToLower(c.SHA256)
	}
	n := c.Normalize
	switch {
	case len(n.Mean) > 0 || len(n.Std) > 0:
		if len(n.Mean) != 3 || len(n.Std) != 3 {
			bad("normalize: mean and std need 3 values each, got %d and %d", len(n.Mean), len(n.Std))
		}
		for _, s := range n.Std {
			if s == 0 {
				bad("normalize: std has a zero")
			}
		}
		if n.Scale != 0 || n.Offset != 0 {
			bad("normalize: give either scale/offset or mean/std, not both")
		}
	case n.Scale == 0:
		bad("normalize: no scale (or mean/std)")
	}
	if len(c.FeatureTensors) == 0 {
		bad("no feature_tensors")
	}
	seen := map[string]bool{}
	for i := range c.FeatureTensors {
		f := &c.FeatureTensors[i]
		if f.Tensor == "" {
			bad("feature tensor %d: no name", i)
		}
		if seen[f.Tensor] {
			bad("feature tensor %q listed twice", f.Tensor)
		}
		seen[f.Tensor] = true
		if f.Stride <= 0 {
			bad("feature tensor %q: stride %d", f.Tensor, f.Stride)
		}
		if f.Channels <= 0 {
			bad("feature tensor %q: channels %d", f.Tensor, f.Channels)
		}
		f.Layout = strings.ToUpper(f.Layout)
		if f.Layout == "" {
			f.Layout = "NCHW"
		}
		if f.Layout != "NCHW" && f.Layout != "NHWC" {
			bad("feature tensor %q: layout %q: want NCHW or NHWC", f.Tensor, f.Layout)
		}
	}
	if len(errs) > 0 {
		name := c.Name
		if name == "" {
			name = "(unnamed)"
		}
		return fmt.Errorf("backbone card %s: %w", name, errors.Join(errs...))
	}
	return nil
}

// validated returns a validated deep copy of c, leaving c untouched (so a
// card shared between goroutines is never written).
func (c *Card) validated() (*Card, error) {
	if c == nil {
		return nil, errors.New("no backbone card")
	}
	cp := *c
	cp.FeatureTensors = append([]FeatureTensor(nil), c.FeatureTensors...)
	cp.Normalize.Mean = append([]float64(nil), c.Normalize.Mean...)
	cp.Normalize.Std = append([]float64(nil), c.Normalize.Std...)
	if err := cp.Validate(); err != nil {
		return nil, err
	}
	return &cp, nil
}

// Channels is the total channel count of the concatenated feature maps.
func (c *Card) Channels() int {
	n := 0
	for _, f := range c.FeatureTensors {
		n += f.Channels
	}
	return n
}

// FinestStride is the smallest feature stride: the patch grid's stride.
func (c *Card) FinestStride() int {
	s := 0
	for _, f := range c.FeatureTensors {
		if s == 0 || f.Stride < s {
			s = f.Stride
		}
	}
	return s
}

// MaxStride is the largest feature stride; input sizes must be multiples of it.
func (c *Card) MaxStride() int {
	s := 0
	for _, f := range c.FeatureTensors {
		s = max(s, f.Stride)
	}
	return s
}

// DefaultConfig is the workstation's default configuration for the card:
// plain resize to the card's input size (NativeSize, else 224) with no crop
// (METHOD.md §1), no channel reduction, batches of 8.
func (c *Card) DefaultConfig() Config {
	size := c.NativeSize
	if size <= 0 {
		size = DefaultInputSize
	}
	return Config{InputSize: size, ResizeTo: size * DefaultResizeTo / DefaultInputSize, Batch: DefaultBatch}
}

// ReadBackbone reads the ONNX file at path and, when card.SHA256 is set,
// checks the file's digest against it.
func ReadBackbone(path string, card *Card) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read backbone: %w", err)
	}
	if card != nil && card.SHA256 != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != strings.ToLower(card.SHA256) {
			return nil, fmt.Errorf("backbone %s: sha256 %s does not match card %s (%s): wrong or corrupt file",
				path, got, card.Name, card.SHA256)
		}
	}
	return data, nil
}
