package ort_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

func TestRunGraph(t *testing.T) {
	rt, err := ort.Open(ort.Options{Threads: 1, Device: ort.DeviceAuto})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if rt.Provider() != ort.DeviceCPU && rt.Provider() != ort.DeviceCUDA {
		t.Fatalf("provider %s", rt.Provider())
	}
	g := onnxgraph.New("t")
	a := g.Input("a", onnxgraph.Float, -1, 3)
	w := g.Const("w", []float32{1, 2, 3, 4, 5, 6}, 3, 2)
	y := g.Op("MatMul", []string{a, w})
	idx := g.OpN("TopK", []string{y, g.Ints(1)}, 2, onnxgraph.AttrInt("axis", 1))
	g.Output(y, onnxgraph.Float)
	g.Output(idx[1], onnxgraph.Int64)
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := rt.NewSession(model, []string{"a"}, []string{y, idx[1]})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(ort.F32Tensor([]float32{1, 0, 0, 0, 1, -1}, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{1, 2, -2, -2}
	for i, v := range want {
		if out[0].F32[i] != v {
			t.Fatalf("matmul[%d] = %v, want %v (all %v)", i, out[0].F32[i], v, out[0].F32)
		}
	}
	if out[1].I64[0] != 1 || out[1].I64[1] != 0 {
		t.Fatalf("topk indices %v", out[1].I64)
	}
	if _, err := s.Run(ort.F32Tensor([]float32{1, 2}, 2, 3)); err == nil {
		t.Fatal("short data accepted")
	}

	// RunInto writes into the caller's memory, and again on a second run.
	y2, i2 := make([]float32, 4), make([]int64, 2)
	for _, in := range [][]float32{{1, 0, 0, 0, 1, -1}, {0, 0, 1, 1, 1, 1}} {
		if err := s.RunInto([]ort.Tensor{ort.F32Tensor(y2, 2, 2), ort.I64Tensor(i2, 2, 1)}, ort.F32Tensor(in, 2, 3)); err != nil {
			t.Fatal(err)
		}
		for r := range 2 {
			for c := range 2 {
				var want float32
				for k := range 3 {
					want += in[r*3+k] * float32(1+2*k+c)
				}
				if y2[r*2+c] != want {
					t.Fatalf("RunInto matmul[%d,%d] = %v, want %v", r, c, y2[r*2+c], want)
				}
			}
		}
	}
	if i2[0] != 1 || i2[1] != 1 {
		t.Fatalf("RunInto topk indices %v", i2)
	}
	if err := s.RunInto([]ort.Tensor{ort.F32Tensor(y2, 2, 2)}, ort.F32Tensor(y2[:3], 1, 3)); err == nil || !strings.Contains(err.Error(), "outputs") {
		t.Fatalf("one output buffer for two outputs: %v", err)
	}
	if err := s.RunInto([]ort.Tensor{ort.F32Tensor(y2[:2], 1, 2), ort.I64Tensor(i2, 2, 1)}, ort.F32Tensor([]float32{1, 0, 0, 0, 1, -1}, 2, 3)); err == nil {
		t.Fatal("an output buffer of the wrong shape was accepted")
	}
}

func TestFindLibraryErrors(t *testing.T) {
	_, err := ort.FindLibrary(filepath.Join(t.TempDir(), "nope.so"))
	if err == nil || !strings.Contains(err.Error(), "nope.so") {
		t.Fatalf("want error naming the file, got %v", err)
	}
	t.Setenv(ort.LibraryEnv, "/does/not/exist.so")
	_, err = ort.FindLibrary("")
	if err == nil || !strings.Contains(err.Error(), "/does/not/exist.so") {
		t.Fatalf("want error naming env path, got %v", err)
	}
	os.Unsetenv(ort.LibraryEnv)
}

func TestParseDevice(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ort.Device
		ok   bool
	}{{"", ort.DeviceAuto, true}, {"CPU", ort.DeviceCPU, true}, {"cuda", ort.DeviceCUDA, true}, {"WebGPU", ort.DeviceWebGPU, true}, {"tpu", "", false}} {
		got, err := ort.ParseDevice(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDevice(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestExplicitCUDAFailsClearly(t *testing.T) {
	_, err := ort.Open(ort.Options{Device: ort.DeviceCUDA})
	if err == nil {
		t.Skip("a CUDA provider is present on this machine")
	}
	if !strings.Contains(err.Error(), "cuda") {
		t.Fatalf("error should name the device: %v", err)
	}
}
