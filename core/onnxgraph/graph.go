// Package onnxgraph builds, loads, edits and serialises ONNX graphs with the
// ONNX protobuf types. The encoder appends feature aggregation to a backbone
// with it, the banks build their search graphs with it and the trainer emits
// its forward/backward/update graph through it.
package onnxgraph

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	pb "github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// Element types used by the workstation's graphs.
const (
	Float = int32(pb.TensorProto_FLOAT)
	Int64 = int32(pb.TensorProto_INT64)
	Int32 = int32(pb.TensorProto_INT32)
	Bool  = int32(pb.TensorProto_BOOL)
)

// DefaultOpset is the ONNX opset of graphs created by New.
const DefaultOpset = 17

// Graph is an ONNX model under construction or edit. Value names are
// generated uniquely for node outputs; inputs, outputs and initializers keep
// the names they are given.
type Graph struct {
	Model *pb.ModelProto
	seq   int
	used  map[string]bool
}

// New starts an empty model with the default opset.
func New(name string) *Graph {
	m := &pb.ModelProto{
		IrVersion:    8,
		ProducerName: "dmad-workstation",
		OpsetImport:  []*pb.OperatorSetIdProto{{Domain: "", Version: DefaultOpset}},
		Graph:        &pb.GraphProto{Name: name},
	}
	return wrap(m)
}

// Load parses a serialised ONNX model.
func Load(data []byte) (*Graph, error) {
	m := &pb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("parse ONNX model: %w", err)
	}
	if m.Graph == nil {
		return nil, fmt.Errorf("parse ONNX model: no graph")
	}
	return wrap(m), nil
}

func wrap(m *pb.ModelProto) *Graph {
	g := &Graph{Model: m, used: map[string]bool{}}
	for _, v := range m.Graph.Input {
		g.used[v.Name] = true
	}
	for _, t := range m.Graph.Initializer {
		g.used[t.Name] = true
	}
	for _, n := range m.Graph.Node {
		g.used[n.Name] = true // node names must stay unique too
		for _, o := range n.Output {
			g.used[o] = true
		}
	}
	return g
}

// Opset reports the default-domain opset version the model imports.
func (g *Graph) Opset() int64 {
	for _, o := range g.Model.OpsetImport {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			return o.Version
		}
	}
	return 0
}

// Marshal serialises the model.
func (g *Graph) Marshal() ([]byte, error) {
	b, err := proto.Marshal(g.Model)
	if err != nil {
		return nil, fmt.Errorf("serialise ONNX model %s: %w", g.Model.Graph.Name, err)
	}
	return b, nil
}

// Fresh returns a value name with prefix that is not used in the graph yet.
func (g *Graph) Fresh(prefix string) string {
	for {
		g.seq++
		n := fmt.Sprintf("%s_%d", prefix, g.seq)
		if !g.used[n] {
			g.used[n] = true
			return n
		}
	}
}

func valueInfo(name string, elem int32, dims []int64) *pb.ValueInfoProto {
	shape := &pb.TensorShapeProto{}
	for i, d := range dims {
		dim := &pb.TensorShapeProto_Dimension{}
		if d < 0 {
			dim.Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: fmt.Sprintf("%s_d%d", name, i)}
		} else {
			dim.Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: d}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &pb.ValueInfoProto{
		Name: name,
		Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: &pb.TypeProto_Tensor{ElemType: elem, Shape: shape}}},
	}
}

// Input declares a graph input; a negative dimension is symbolic (dynamic).
func (g *Graph) Input(name string, elem int32, dims ...int64) string {
	g.used[name] = true
	g.Model.Graph.Input = append(g.Model.Graph.Input, valueInfo(name, elem, dims))
	return name
}

// Output declares value as a graph output. Shapes are left for ONNX Runtime
// to infer; pass dims to declare them.
func (g *Graph) Output(value string, elem int32, dims ...int64) {
	vi := valueInfo(value, elem, dims)
	if dims == nil {
		vi.Type.GetTensorType().Shape = nil
	}
	g.Model.Graph.Output = append(g.Model.Graph.Output, vi)
}

// ClearOutputs removes every declared graph output.
func (g *Graph) ClearOutputs() { g.Model.Graph.Output = nil }

// Const adds a float32 initializer and returns its name.
func (g *Graph) Const(prefix string, data []float32, dims ...int64) string {
	name := g.Fresh(prefix)
	g.Model.Graph.Initializer = append(g.Model.Graph.Initializer, FloatTensor(name, data, dims...))
	return name
}

// ConstI64 adds an int64 initializer and returns its name.
func (g *Graph) ConstI64(prefix string, data []int64, dims ...int64) string {
	name := g.Fresh(prefix)
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	g.Model.Graph.Initializer = append(g.Model.Graph.Initializer,
		&pb.TensorProto{Name: name, Dims: dims, DataType: Int64, RawData: raw})
	return name
}

// Scalar adds a float32 scalar initializer.
func (g *Graph) Scalar(v float32) string { return g.Const("c", []float32{v}) }

// Ints adds a 1-D int64 initializer (shapes, axes, sizes).
func (g *Graph) Ints(v ...int64) string { return g.ConstI64("i", v, int64(len(v))) }

// FloatTensor encodes data as a float32 TensorProto (raw little-endian bytes).
func FloatTensor(name string, data []float32, dims ...int64) *pb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &pb.TensorProto{Name: name, Dims: dims, DataType: Float, RawData: raw}
}

// Attr is a node attribute.
type Attr = *pb.AttributeProto

// AttrInt is an integer attribute.
func AttrInt(name string, v int64) Attr {
	return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_INT, I: v}
}

// AttrInts is an integer-list attribute.
func AttrInts(name string, v ...int64) Attr {
	return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_INTS, Ints: v}
}

// AttrFloat is a float attribute.
func AttrFloat(name string, v float32) Attr {
	return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_FLOAT, F: v}
}

// AttrString is a string attribute.
func AttrString(name, v string) Attr {
	return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_STRING, S: []byte(v)}
}

// Op appends a single-output node and returns its output name.
func (g *Graph) Op(op string, inputs []string, attrs ...Attr) string {
	return g.OpN(op, inputs, 1, attrs...)[0]
}

// OpN appends a node with n outputs and returns their names.
func (g *Graph) OpN(op string, inputs []string, n int, attrs ...Attr) []string {
	outs := make([]string, n)
	for i := range outs {
		outs[i] = g.Fresh(strings.ToLower(op))
	}
	g.Model.Graph.Node = append(g.Model.Graph.Node, &pb.NodeProto{
		Name:      g.Fresh("n_" + op),
		OpType:    op,
		Input:     inputs,
		Output:    outs,
		Attribute: attrs,
	})
	return outs
}

// OpTo appends a node whose single output gets the given name (for named
// graph outputs).
func (g *Graph) OpTo(out, op string, inputs []string, attrs ...Attr) string {
	g.used[out] = true
	g.Model.Graph.Node = append(g.Model.Graph.Node, &pb.NodeProto{
		Name: g.Fresh("n_" + op), OpType: op, Input: inputs, Output: []string{out}, Attribute: attrs,
	})
	return out
}

// Has reports whether value is produced by a node, an input or an initializer.
func (g *Graph) Has(value string) bool { return g.used[value] }

// Prune removes nodes and initializers that do not contribute to the
// declared graph outputs (graph surgery: cut a backbone after its feature
// tensors).
func (g *Graph) Prune() {
	gr := g.Model.Graph
	producer := map[string]*pb.NodeProto{}
	for _, n := range gr.Node {
		for _, o := range n.Output {
			producer[o] = n
		}
	}
	needed := map[string]bool{}
	keep := map[*pb.NodeProto]bool{}
	var stack []string
	for _, o := range gr.Output {
		stack = append(stack, o.Name)
	}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if needed[v] {
			continue
		}
		needed[v] = true
		if n := producer[v]; n != nil && !keep[n] {
			keep[n] = true
			stack = append(stack, n.Input...)
			for _, a := range n.Attribute {
				if a.G != nil { // subgraph inputs from the outer scope
					for _, sn := range a.G.Node {
						stack = append(stack, sn.Input...)
					}
				}
			}
		}
	}
	var nodes []*pb.NodeProto
	for _, n := range gr.Node {
		if keep[n] {
			nodes = append(nodes, n)
		}
	}
	gr.Node = nodes
	var inits []*pb.TensorProto
	for _, t := range gr.Initializer {
		if needed[t.Name] {
			inits = append(inits, t)
		}
	}
	gr.Initializer = inits
	var vis []*pb.ValueInfoProto
	for _, v := range gr.ValueInfo {
		if needed[v.Name] {
			vis = append(vis, v)
		}
	}
	gr.ValueInfo = vis
}
