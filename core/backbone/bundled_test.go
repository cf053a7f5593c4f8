package backbone

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookupOrder(t *testing.T) {
	write := func(dir, name, content string) *Store {
		t.Helper()
		s := &Store{Dir: dir}
		model := filepath.Join(t.TempDir(), name+".onnx")
		if err := os.WriteFile(model, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Import(model, []byte(`{"name":"`+name+`"}`)); err != nil {
			t.Fatal(err)
		}
		return s
	}
	bundle := write(filepath.Join(t.TempDir(), "models"), "mobilenet", "bundled bytes")
	user := write(filepath.Join(t.TempDir(), "store"), "mobilenet", "imported bytes")
	write(user.Dir, "resnet", "resnet bytes")
	broken := &Store{Dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(broken.Dir, "bad.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken.Dir, "bad.onnx"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		stores   []*Store
		lookup   string
		wantDir  string
		notFound bool
		wantErr  string
	}{
		{"bundle first", []*Store{bundle, user}, "mobilenet", bundle.Dir, false, ""},
		{"user store when the bundle lacks it", []*Store{bundle, user}, "resnet", user.Dir, false, ""},
		{"no bundle", []*Store{{Dir: filepath.Join(t.TempDir(), "absent")}, user}, "mobilenet", user.Dir, false, ""},
		{"nowhere", []*Store{bundle, user}, "vgg", "", true, user.Dir},
		{"a broken card is reported, not skipped", []*Store{broken, user}, "bad", "", false, "bad.json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Lookup(tt.stores, tt.lookup)
			if tt.wantDir != "" {
				if err != nil || filepath.Dir(e.ModelPath) != tt.wantDir {
					t.Fatalf("got %+v, %v; want it from %s", e, err, tt.wantDir)
				}
				return
			}
			if err == nil || errors.Is(err, ErrNotFound) != tt.notFound || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %+v, %v; want an error (not found: %v) naming %q", e, err, tt.notFound, tt.wantErr)
			}
		})
	}
}

// TestResolveNotInstalled: a name found nowhere says where it looked and
// wraps ErrNotInstalled (the GUI offers an import for it).
func TestResolveNotInstalled(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	_, _, err := Resolve("mobilenet_v2_imagenet")
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("got %v, want ErrNotInstalled", err)
	}
	for _, want := range []string{BundledDir(), os.Getenv("XDG_DATA_HOME"), "backbone import", "Import backbone"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "disk space") {
		t.Errorf("error gives an unrelated hint: %v", err)
	}
}
