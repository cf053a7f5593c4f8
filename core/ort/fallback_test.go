package ort

import (
	"bytes"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/onnxgraph"
	onnx "github.com/yalue/onnxruntime_go"
)

// matMulModel is a graph y = a·w with a of shape [n, 3].
func matMulModel(t *testing.T) (model []byte, in, out string) {
	t.Helper()
	g := onnxgraph.New("t")
	a := g.Input("a", onnxgraph.Float, -1, 3)
	y := g.Op("MatMul", []string{a, g.Const("w", []float32{1, 2, 3, 4, 5, 6}, 3, 2)})
	g.Output(y, onnxgraph.Float)
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return model, a, y
}

// gpuRuntime is a real CPU Runtime that believes it runs on a GPU provider
// (DirectML, which cannot build sessions off Windows), chosen by auto or
// by name, with its log in buf.
func gpuRuntime(t *testing.T, auto bool) (*Runtime, *bytes.Buffer) {
	t.Helper()
	rt, err := Open(Options{Threads: 1, Device: DeviceCPU})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	var buf bytes.Buffer
	rt.log = slog.New(slog.NewTextHandler(&buf, nil))
	rt.provider, rt.auto = DeviceDirectML, auto
	return rt, &buf
}

// gpuSession is a CPU session of model posing as one on rt's GPU, whose
// runs fail with the error the GPU driver gave.
func gpuSession(t *testing.T, rt *Runtime, model []byte, in, out string) *Session {
	t.Helper()
	s, err := rt.newSession(DeviceCPU, model, []string{in}, []string{out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.provider, s.model = DeviceDirectML, model
	s.run = func(in, out []onnx.Value) error { return errors.New("80070057 Invalid parameter (the GPU's)") }
	return s
}

func TestAutoGPUFailingARunGivesWayToCPU(t *testing.T) {
	model, in, out := matMulModel(t)
	rt, log := gpuRuntime(t, true)
	s := gpuSession(t, rt, model, in, out)
	other := gpuSession(t, rt, model, in, out) // built before the failure, not yet failed
	otherOnGPU := false
	other.run = func(in, out []onnx.Value) error { otherOnGPU = true; return errors.New("the GPU again") }

	res, err := s.Run(F32Tensor([]float32{1, 0, 0, 0, 1, -1}, 2, 3))
	if err != nil {
		t.Fatalf("run on a failing auto-chosen GPU: %v, want the CPU's result", err)
	}
	if want := []float32{1, 2, -2, -2}; !slices.Equal(res[0].F32, want) {
		t.Fatalf("result %v, want %v", res[0].F32, want)
	}
	if rt.Provider() != DeviceCPU || s.provider != DeviceCPU {
		t.Fatalf("after the failure: runtime on %s, session on %s; want cpu", rt.Provider(), s.provider)
	}
	if !strings.Contains(log.String(), "using the CPU from now on") || !strings.Contains(log.String(), "80070057") {
		t.Errorf("no warning naming the GPU's error: %q", log.String())
	}
	// A session made on the GPU before moves to the CPU on its next run.
	y := make([]float32, 4)
	if err := other.RunInto([]Tensor{F32Tensor(y, 2, 2)}, F32Tensor([]float32{0, 0, 1, 1, 1, 1}, 2, 3)); err != nil {
		t.Fatalf("the other GPU session: %v", err)
	}
	if want := []float32{5, 6, 9, 12}; !slices.Equal(y, want) {
		t.Fatalf("the other session's result %v, want %v", y, want)
	}
	if otherOnGPU {
		t.Error("a session ran on the GPU after the runtime gave way to the CPU")
	}
	// New sessions are built for the CPU.
	s2, err := rt.NewSession(model, []string{in}, []string{out})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.provider != DeviceCPU {
		t.Fatalf("new session on %s", s2.provider)
	}
}

func TestGPUFailuresThatAreNotTheGPUs(t *testing.T) {
	model, in, out := matMulModel(t)
	// Bad inputs fail on the CPU too: the GPU's error comes back, and the
	// Runtime keeps its GPU.
	rt, _ := gpuRuntime(t, true)
	s := gpuSession(t, rt, model, in, out)
	y := make([]float32, 2) // one row's worth for two rows
	err := s.RunInto([]Tensor{F32Tensor(y, 1, 2)}, F32Tensor([]float32{1, 0, 0, 0, 1, -1}, 2, 3))
	if err == nil || !strings.Contains(err.Error(), "80070057") {
		t.Fatalf("run with a wrong output shape: %v, want the GPU's error", err)
	}
	if rt.Provider() != DeviceDirectML || s.provider != DeviceDirectML {
		t.Fatalf("runtime on %s, session on %s after the caller's mistake; want directml", rt.Provider(), s.provider)
	}
	// A GPU the user named fails the job with its error.
	named, _ := gpuRuntime(t, false)
	s = gpuSession(t, named, model, in, out)
	if _, err := s.Run(F32Tensor([]float32{1, 0, 0, 0, 1, -1}, 2, 3)); err == nil || !strings.Contains(err.Error(), "80070057") {
		t.Fatalf("run on a named, failing GPU: %v, want the GPU's error", err)
	}
	if named.Provider() != DeviceDirectML {
		t.Fatalf("a named GPU was replaced by %s", named.Provider())
	}
}

func TestAutoGPUFailingToBuildGivesWayToCPU(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("DirectML builds sessions on Windows")
	}
	model, in, out := matMulModel(t)
	rt, log := gpuRuntime(t, true)
	s, err := rt.NewSession(model, []string{in}, []string{out})
	if err != nil {
		t.Fatalf("build on a GPU that cannot: %v, want a CPU session", err)
	}
	defer s.Close()
	if s.provider != DeviceCPU || rt.Provider() != DeviceCPU {
		t.Fatalf("session on %s, runtime on %s; want cpu", s.provider, rt.Provider())
	}
	if !strings.Contains(log.String(), "building a graph") {
		t.Errorf("no warning: %q", log.String())
	}
	named, _ := gpuRuntime(t, false)
	if _, err := named.NewSession(model, []string{in}, []string{out}); err == nil || !strings.Contains(err.Error(), "DirectML") {
		t.Fatalf("build on a named GPU that cannot: %v, want its error", err)
	}
	// A graph the CPU cannot build either fails with the GPU's error, and
	// the Runtime keeps its GPU.
	rt2, _ := gpuRuntime(t, true)
	if _, err := rt2.NewSession([]byte("not onnx"), []string{in}, []string{out}); err == nil {
		t.Fatal("a corrupt graph was built")
	}
	if rt2.Provider() != DeviceDirectML {
		t.Fatalf("a corrupt graph moved the runtime to %s", rt2.Provider())
	}
}
