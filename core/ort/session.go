package ort

import (
	"fmt"

	onnx "github.com/yalue/onnxruntime_go"
)

// Tensor is a dense row-major tensor held in Go memory. Exactly one of F32
// and I64 is set.
type Tensor struct {
	Shape []int64
	F32   []float32
	I64   []int64
}

// F32Tensor wraps data as a float32 tensor of the given shape.
func F32Tensor(data []float32, shape ...int64) Tensor { return Tensor{Shape: shape, F32: data} }

// I64Tensor wraps data as an int64 tensor of the given shape.
func I64Tensor(data []int64, shape ...int64) Tensor { return Tensor{Shape: shape, I64: data} }

// Len is the number of elements the shape holds.
func (t Tensor) Len() int {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return int(n)
}

func (t Tensor) value() (onnx.Value, error) {
	switch {
	case t.F32 != nil:
		if len(t.F32) != t.Len() {
			return nil, fmt.Errorf("tensor shape %v holds %d values, data has %d", t.Shape, t.Len(), len(t.F32))
		}
		return onnx.NewTensor(onnx.Shape(t.Shape), t.F32)
	case t.I64 != nil:
		if len(t.I64) != t.Len() {
			return nil, fmt.Errorf("tensor shape %v holds %d values, data has %d", t.Shape, t.Len(), len(t.I64))
		}
		return onnx.NewTensor(onnx.Shape(t.Shape), t.I64)
	}
	if t.Len() == 0 {
		return onnx.NewTensor(onnx.Shape(t.Shape), []float32{})
	}
	return nil, fmt.Errorf("tensor of shape %v has no data", t.Shape)
}

// Session runs one in-memory ONNX model. A Session is not safe for
// concurrent Run calls; create one per goroutine.
type Session struct {
	s       *onnx.DynamicAdvancedSession
	run     func(in, out []onnx.Value) error // s.Run; replaced in tests
	inputs  []string
	outputs []string

	rt       *Runtime
	provider Device
	// model is kept while the session runs on a GPU the Runtime chose by
	// itself, to rebuild the session on the CPU if the GPU fails it.
	model []byte
}

// NewSession compiles model (serialised ONNX) for the Runtime's provider.
// inputs and outputs name the graph inputs fed and outputs fetched by Run.
// With DeviceAuto, a GPU that cannot build a graph the CPU can gives way
// to the CPU.
func (r *Runtime) NewSession(model []byte, inputs, outputs []string) (*Session, error) {
	d := r.Provider()
	s, err := r.newSession(d, model, inputs, outputs)
	if err == nil || !r.mayFallBack(d) {
		return s, err
	}
	cpu, cerr := r.newSession(DeviceCPU, model, inputs, outputs)
	if cerr != nil {
		return nil, err // the graph's fault, not the GPU's
	}
	r.fallBack(d, "building a graph", err)
	return cpu, nil
}

func (r *Runtime) newSession(d Device, model []byte, inputs, outputs []string) (*Session, error) {
	opts, err := r.sessionOptions(d)
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	s, err := onnx.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, opts)
	if err != nil {
		return nil, fmt.Errorf("create %s session: %w", d, err)
	}
	out := &Session{s: s, run: s.Run, inputs: inputs, outputs: outputs, rt: r, provider: d}
	if r.auto && d != DeviceCPU {
		out.model = model
	}
	return out, nil
}

// runValues runs the session. Where the Runtime chose a GPU by itself and
// the GPU fails a run that the CPU then completes, the session stays on
// the CPU and the Runtime gives way to it (see Runtime.fallBack); a GPU
// session whose Runtime has already given way moves to the CPU before it
// runs.
func (s *Session) runValues(in, out []onnx.Value) error {
	if s.provider != DeviceCPU && s.rt.Provider() == DeviceCPU {
		cpu, err := s.rt.newSession(DeviceCPU, s.model, s.inputs, s.outputs)
		if err != nil {
			return err
		}
		s.replace(cpu)
	}
	fresh := make([]bool, len(out)) // outputs ONNX Runtime is to allocate
	for i, v := range out {
		fresh[i] = v == nil
	}
	err := s.run(in, out)
	if err == nil || !s.rt.mayFallBack(s.provider) {
		return err
	}
	cpu, cerr := s.rt.newSession(DeviceCPU, s.model, s.inputs, s.outputs)
	if cerr != nil {
		return err
	}
	for i, v := range out {
		if fresh[i] && v != nil {
			v.Destroy()
			out[i] = nil
		}
	}
	if cerr := cpu.run(in, out); cerr != nil {
		cpu.Close()
		return err // the inputs' fault, not the GPU's
	}
	s.rt.fallBack(s.provider, "running a graph", err)
	s.replace(cpu)
	return nil
}

// replace makes s the session next, freeing its own.
func (s *Session) replace(next *Session) {
	_ = s.s.Destroy()
	s.s, s.run, s.provider, s.model = next.s, next.run, next.provider, next.model
}

// Run feeds inputs (in the order given to NewSession) and returns the
// outputs, copied into Go memory.
func (s *Session) Run(inputs ...Tensor) ([]Tensor, error) {
	if len(inputs) != len(s.inputs) {
		return nil, fmt.Errorf("session wants %d inputs %v, got %d", len(s.inputs), s.inputs, len(inputs))
	}
	in, err := values("input", s.inputs, inputs)
	defer destroy(in)
	if err != nil {
		return nil, err
	}
	out := make([]onnx.Value, len(s.outputs))
	if err := s.runValues(in, out); err != nil {
		return nil, err
	}
	res := make([]Tensor, len(out))
	for i, v := range out {
		switch t := v.(type) {
		case *onnx.Tensor[float32]:
			res[i] = Tensor{Shape: t.GetShape(), F32: t.GetData()}
		case *onnx.Tensor[int64]:
			res[i] = Tensor{Shape: t.GetShape(), I64: t.GetData()}
		default:
			v.Destroy()
			return nil, fmt.Errorf("output %s: unsupported type %T", s.outputs[i], v)
		}
		// GetData returns a Go-owned copy for ORT-allocated outputs, so the
		// ORT value can go now.
		v.Destroy()
	}
	return res, nil
}

// RunInto is Run writing the outputs into outputs (in the order given to
// NewSession), whose shapes must be those the graph produces: large outputs
// then go to Go memory the caller reuses instead of being copied out of
// ONNX Runtime's.
func (s *Session) RunInto(outputs []Tensor, inputs ...Tensor) error {
	if len(inputs) != len(s.inputs) {
		return fmt.Errorf("session wants %d inputs %v, got %d", len(s.inputs), s.inputs, len(inputs))
	}
	if len(outputs) != len(s.outputs) {
		return fmt.Errorf("session gives %d outputs %v, got %d to fill", len(s.outputs), s.outputs, len(outputs))
	}
	in, err := values("input", s.inputs, inputs)
	defer destroy(in)
	if err != nil {
		return err
	}
	out, err := values("output", s.outputs, outputs)
	defer destroy(out)
	if err != nil {
		return err
	}
	return s.runValues(in, out)
}

// values wraps ts as ONNX Runtime values; names name them (kind: input or
// output) in errors. The values made before an error are returned too, for
// destroy.
func values(kind string, names []string, ts []Tensor) ([]onnx.Value, error) {
	vals := make([]onnx.Value, len(ts))
	for i, t := range ts {
		v, err := t.value()
		if err != nil {
			return vals, fmt.Errorf("%s %s: %w", kind, names[i], err)
		}
		vals[i] = v
	}
	return vals, nil
}

// destroy frees the values made by values.
func destroy(vals []onnx.Value) {
	for _, v := range vals {
		if v != nil {
			v.Destroy()
		}
	}
}

// Close frees the session.
func (s *Session) Close() error {
	if s == nil || s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	return err
}
