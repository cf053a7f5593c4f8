package encoder

import (
	"fmt"

	"strings"

	pb "github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/dmad/workstation/core/onnxgraph"
)

// OutputName is the single output of a feature graph: [batch, H0·W0, C].
const OutputName = "patches"

// Defaults of Config.
const (
	DefaultInputSize = 224
	DefaultResizeTo  = 256
	DefaultBatch     = 8
)

// Config sets the encoder's geometry and output.
type Config struct {
	// InputSize is the square network input side (default 224). It must be
	// a multiple of the card's largest feature stride.
	InputSize int
	// Crop selects the reference preprocessing: resize the shorter side to
	// ResizeTo (keeping the aspect ratio, as torchvision's Resize(int)) and
	// centre-crop InputSize×InputSize. Without Crop (the default, METHOD.md
	// §1) the whole image is resized to InputSize×InputSize.
	Crop bool
	// ResizeTo is the shorter side before the crop (default 256); used only
	// with Crop.
	ResizeTo int
	// Dim reduces the concatenated channels to Dim by adaptive average
	// pooling over the channel axis (PatchCore's reference); 0 keeps them.
	Dim int
	// Batch is the number of images per inference run (default 8).
	Batch int
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.InputSize <= 0 {
		c.InputSize = DefaultInputSize
	}
	if c.ResizeTo <= 0 {
		c.ResizeTo = c.InputSize * DefaultResizeTo / DefaultInputSize
	}
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
	return c
}

// Validate checks c (after defaults) against card.
func (c Config) Validate(card *Card) error {
	c = c.WithDefaults()
	if s := card.MaxStride(); s > 0 && c.InputSize%s != 0 {
		return fmt.Errorf("encoder config: input size %d is not a multiple of %s's largest feature stride %d",
			c.InputSize, card.Name, s)
	}
	if c.Crop && c.ResizeTo < c.InputSize {
		return fmt.Errorf("encoder config: resize %d is smaller than the crop %d", c.ResizeTo, c.InputSize)
	}
	if c.Dim < 0 {
		return fmt.Errorf("encoder config: negative dimension %d", c.Dim)
	}
	return nil
}

// OutDim is the feature dimension the encoder produces for card.
func (c Config) OutDim(card *Card) int {
	if c.Dim > 0 {
		return c.Dim
	}
	return card.Channels()
}

// BuildFeatureGraph cuts backbone (serialised ONNX) at card's feature
// tensors and appends the patch aggregation of METHOD.md §1:
//
//   - every map: 3×3 AveragePool, stride 1, pad 1, count_include_pad=1 —
//     the padded zeros count, as in PatchCore's reference (which unfolds
//     zero-padded 3×3 neighbourhoods and averages them);
//   - every coarser map: bilinear Resize (mode linear,
//     coordinate_transformation_mode half_pixel, i.e. torch
//     F.interpolate(mode="bilinear", align_corners=False)) to the grid of
//     the finest map;
//   - Concat on channels in card order;
//   - with cfg.Dim > 0: adaptive average pooling over channels to cfg.Dim
//     (torch F.adaptive_avg_pool1d), done as a MatMul by a fixed averaging
//     matrix;
//   - transpose to [batch, H0·W0, C], the single graph output "patches".
//
// Everything not needed for it (the classifier head) is pruned; the image
// input gets a dynamic batch dimension and cfg.InputSize as its spatial size.
// Strides are not checked here (that needs a run): New checks them.
func BuildFeatureGraph(card *Card, backbone []byte, cfg Config) ([]byte, error) {
	g, err := buildGraph(card, backbone, cfg, false)
	if err != nil {
		return nil, err
	}
	b, err := g.Marshal()
	if err != nil {
		return nil, fmt.Errorf("feature graph for %s: %w", card.Name, err)
	}
	return b, nil
}

// buildProbeGraph cuts backbone so that its outputs are the raw feature maps
// of card, in card order.
func buildProbeGraph(card *Card, backbone []byte, cfg Config) ([]byte, error) {
	g, err := buildGraph(card, backbone, cfg, true)
	if err != nil {
		return nil, err
	}
	b, err := g.Marshal()
	if err != nil {
		return nil, fmt.Errorf("probe graph for %s: %w", card.Name, err)
	}
	return b, nil
}

func buildGraph(card *Card, backbone []byte, cfg Config, probe bool) (*onnxgraph.Graph, error) {
	card, err := card.validated()
	if err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(card); err != nil {
		return nil, err
	}
	g, err := onnxgraph.Load(backbone)
	if err != nil {
		return nil, fmt.Errorf("backbone %s: %w", card.Name, err)
	}
	opset := g.Opset()
	if opset < 11 {
		return nil, fmt.Errorf("backbone %s: ONNX opset %d is too old (need 11 or newer for Resize half_pixel)", card.Name, opset)
	}
	gr := g.Model.Graph
	if err := setImageInput(card, gr, cfg.InputSize); err != nil {
		return nil, err
	}
	produced := map[string]bool{}
	for _, n := range gr.Node {
		for _, o := range n.Output {
			produced[o] = true
		}
	}
	var missing []string
	for _, f := range card.FeatureTensors {
		if !produced[f.Tensor] {
			missing = append(missing, fmt.Sprintf("%q", f.Tensor))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("backbone card %s names feature tensor %s that graph %q (%d nodes) does not produce",
			card.Name, strings.Join(missing, ", "), gr.Name, len(gr.Node))
	}
	if produced[OutputName] {
		return nil, fmt.Errorf("backbone %s already has a value named %q", card.Name, OutputName)
	}
	// Intermediate shapes recorded by the exporter may carry a fixed batch
	// or input size; ONNX Runtime re-infers them.
	gr.ValueInfo = nil
	g.ClearOutputs()
	if probe {
		for _, f := range card.FeatureTensors {
			g.Output(f.Tensor, onnxgraph.Float)
		}
	} else {
		appendAggregation(g, card, cfg, opset)
		g.Output(OutputName, onnxgraph.Float)
	}
	g.Prune()
	dropUnusedInputs(gr)
	uniqueNodeNames(gr)
	return g, nil
}

// uniqueNodeNames renames nodes whose name repeats an earlier one (ONNX
// Runtime rejects duplicates; onnxgraph.Load does not reserve the loaded
// graph's node names, so appended nodes can collide with them).
func uniqueNodeNames(gr *pb.GraphProto) {
	seen := map[string]bool{}
	for _, n := range gr.Node {
		if n.Name == "" {
			continue
		}
		if seen[n.Name] {
			base := n.Name
			for k := 2; seen[n.Name]; k++ {
				n.Name = fmt.Sprintf("%s_dup%d", base, k)
			}
		}
		seen[n.Name] = true
	}
}

// setImageInput finds the card's input and gives it the shape
// [batch, 3, S, S] (NCHW) or [batch, S, S, 3] (NHWC) with a symbolic batch.
func setImageInput(card *Card, gr *pb.GraphProto, size int) error {
	inits := map[string]bool{}
	for _, t := range gr.Initializer {
		inits[t.Name] = true
	}
	var in *pb.ValueInfoProto
	var names []string
	for _, v := range gr.Input {
		if inits[v.Name] {
			continue
		}
		names = append(names, v.Name)
		if v.Name == card.Input {
			in = v
		}
	}
	if in == nil {
		return fmt.Errorf("backbone card %s: graph has no input %q (inputs: %s)", card.Name, card.Input, strings.Join(names, ", "))
	}
	tt := in.GetType().GetTensorType()
	if tt == nil {
		return fmt.Errorf("backbone %s: input %q is not a tensor", card.Name, card.Input)
	}
	if tt.ElemType != onnxgraph.Float {
		return fmt.Errorf("backbone %s: input %q has element type %s, want float32",
			card.Name, card.Input, pb.TensorProto_DataType(tt.ElemType))
	}
	chAxis := 1
	if card.Layout == "NHWC" {
		chAxis = 3
	}
	if sh := tt.Shape; sh != nil {
		if len(sh.Dim) != 4 {
			return fmt.Errorf("backbone %s: input %q has rank %d, want 4", card.Name, card.Input, len(sh.Dim))
		}
		if c := sh.Dim[chAxis].GetDimValue(); c != 0 && c != 3 {
			return fmt.Errorf("backbone %s: input %q has %d channels on axis %d (%s), want 3", card.Name, card.Input, c, chAxis, card.Layout)
		}
	}
	dims := []int64{-1, 3, int64(size), int64(size)}
	if card.Layout == "NHWC" {
		dims = []int64{-1, int64(size), int64(size), 3}
	}
	shape := &pb.TensorShapeProto{}
	for _, d := range dims {
		dim := &pb.TensorShapeProto_Dimension{}
		if d < 0 {
			dim.Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}
		} else {
			dim.Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: d}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	tt.Shape = shape
	return nil
}

// appendAggregation adds the aggregation nodes ending in OutputName.
func appendAggregation(g *onnxgraph.Graph, card *Card, cfg Config, opset int64) {
	finest := card.FinestStride()
	maps := make([]string, len(card.FeatureTensors))
	var ref string // a map on the finest grid, for the target size
	for i, f := range card.FeatureTensors {
		x := f.Tensor
		if f.Layout == "NHWC" {
			x = g.Op("Transpose", []string{x}, onnxgraph.AttrInts("perm", 0, 3, 1, 2))
		}
		maps[i] = x
		if f.Stride == finest && ref == "" {
			ref = x
		}
	}
	empty := func() string {
		if opset >= 13 {
			return ""
		}
		return g.Const("empty", []float32{}, 0)
	}
	var hw string // [H0, W0] of the finest grid
	for i, f := range card.FeatureTensors {
		x := g.Op("AveragePool", []string{maps[i]},
			onnxgraph.AttrInts("kernel_shape", 3, 3),
			onnxgraph.AttrInts("strides", 1, 1),
			onnxgraph.AttrInts("pads", 1, 1, 1, 1),
			onnxgraph.AttrInt("count_include_pad", 1))
		if f.Stride != finest {
			if hw == "" {
				hw = g.Op("Slice", []string{g.Op("Shape", []string{ref}), g.Ints(2), g.Ints(4), g.Ints(0)})
			}
			nc := g.Op("Slice", []string{g.Op("Shape", []string{x}), g.Ints(0), g.Ints(2), g.Ints(0)})
			sizes := g.Op("Concat", []string{nc, hw}, onnxgraph.AttrInt("axis", 0))
			x = g.Op("Resize", []string{x, empty(), empty(), sizes},
				onnxgraph.AttrString("mode", "linear"),
				onnxgraph.AttrString("coordinate_transformation_mode", "half_pixel"))
		}
		maps[i] = x
	}
	cat := maps[0]
	if len(maps) > 1 {
		cat = g.Op("Concat", maps, onnxgraph.AttrInt("axis", 1))
	}
	c := card.Channels()
	nhwc := g.Op("Transpose", []string{cat}, onnxgraph.AttrInts("perm", 0, 2, 3, 1))
	if cfg.Dim <= 0 || cfg.Dim == c {
		g.OpTo(OutputName, "Reshape", []string{nhwc, g.Ints(0, -1, int64(c))})
		return
	}
	flat := g.Op("Reshape", []string{nhwc, g.Ints(0, -1, int64(c))})
	w := g.Const("chanpool", adaptivePoolMatrix(c, cfg.Dim), int64(c), int64(cfg.Dim))
	g.OpTo(OutputName, "MatMul", []string{flat, w})
}

// adaptivePoolMatrix is the in×out matrix W such that x·W is torch's
// adaptive_avg_pool1d of x from in to out values: output j averages inputs
// [floor(j·in/out), ceil((j+1)·in/out)).
func adaptivePoolMatrix(in, out int) []float32 {
	w := make([]float32, in*out)
	for j := 0; j < out; j++ {
		lo, hi := adaptiveBin(j, in, out)
		v := 1 / float32(hi-lo)
		for i := lo; i < hi; i++ {
			w[i*out+j] = v
		}
	}
	return w
}

// adaptiveBin is the input range [lo, hi) of output j of an adaptive
// average pooling from in to out values.
func adaptiveBin(j, in, out int) (lo, hi int) {
	lo = j * in / out
	hi = ((j+1)*in + out - 1) / out
	return lo, hi
}

// dropUnusedInputs removes graph inputs (other than initializers) that no
// remaining node reads, so ONNX Runtime does not ask for them.
func dropUnusedInputs(gr *pb.GraphProto) {
	used := map[string]bool{}
	for _, n := range gr.Node {
		for _, in := range n.Input {
			used[in] = true
		}
	}
	for _, o := range gr.Output {
		used[o.Name] = true
	}
	var ins []*pb.ValueInfoProto
	for _, v := range gr.Input {
		if used[v.Name] {
			ins = append(ins, v)
		}
	}
	gr.Input = ins
}
