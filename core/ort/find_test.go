package ort

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindLibraryOrder checks where the library is looked for, in order:
// flag, environment, beside the executable (a bundle), the developer tree.
func TestFindLibraryOrder(t *testing.T) {
	sub, file := libraryName()
	root := t.TempDir()
	touch := func(p string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bundle := filepath.Join(root, "bundle")
	besideExe := touch(filepath.Join(bundle, file))
	devTree := touch(filepath.Join(root, "src", "third_party", "onnxruntime", sub, file))
	wd := filepath.Join(root, "src", "cmd", "workstation")
	explicit := touch(filepath.Join(root, "gpu", file))
	empty := t.TempDir()

	for _, tt := range []struct {
		name                      string
		explicit, env, exeDir, wd string
		want                      string
		wantErr                   string
	}{
		{"flag wins", explicit, besideExe, bundle, wd, explicit, ""},
		{"env before bundle", "", explicit, bundle, wd, explicit, ""},
		{"beside the executable", "", "", bundle, empty, besideExe, ""},
		{"bundle before dev tree", "", "", bundle, wd, besideExe, ""},
		{"dev tree from a subfolder", "", "", empty, wd, devTree, ""},
		{"missing flag file", filepath.Join(empty, file), "", bundle, wd, "", "not found"},
		{"missing env file", "", filepath.Join(empty, file), bundle, wd, "", "from $ONNXRUNTIME_LIB"},
		{"nowhere", "", "", empty, empty, "", "beside the program"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findLibrary(tt.explicit, tt.env, tt.exeDir, tt.wd)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestPreferGPUBuild checks that --device cuda picks the CUDA build that
// `make gpu-runtime` puts beside the CPU library, and only a complete one.
func TestPreferGPUBuild(t *testing.T) {
	_, file := libraryName()
	root := t.TempDir()
	put := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cpu := filepath.Join(root, "linux-x64", file)
	put(cpu)
	if got := preferGPUBuild(cpu); got != cpu {
		t.Errorf("no GPU build: got %s, want the CPU library", got)
	}
	put(filepath.Join(root, "linux-x64-gpu", file)) // core without provider: incomplete
	if got := preferGPUBuild(cpu); got != cpu {
		t.Errorf("GPU folder without the provider: got %s, want the CPU library", got)
	}
	put(filepath.Join(root, "linux-x64-gpu", cudaProviderName()))
	if want := filepath.Join(root, "linux-x64-gpu", file); preferGPUBuild(cpu) != want {
		t.Errorf("got %s, want %s", preferGPUBuild(cpu), want)
	}
	bundle := filepath.Join(root, "bundle", file)
	put(bundle)
	put(filepath.Join(root, "bundle", "gpu", file))
	put(filepath.Join(root, "bundle", "gpu", cudaProviderName()))
	if want := filepath.Join(root, "bundle", "gpu", file); preferGPUBuild(bundle) != want {
		t.Errorf("bundle: got %s, want %s", preferGPUBuild(bundle), want)
	}
}
