package backbone

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Issue 11, defect 10: `backbone rm ../../outside/victim` deleted files
// outside the store. Names from users and from cards never leave it.
func TestNamesCannotLeaveTheStore(t *testing.T) {
	root := t.TempDir()
	s := &Store{Dir: filepath.Join(root, "store", "backbones")}
	outside := filepath.Join(root, "outside")
	os.MkdirAll(outside, 0o755)
	os.MkdirAll(s.Dir, 0o755)
	victim := filepath.Join(outside, "victim")
	for _, ext := range []string{".json", ".onnx"} {
		if err := os.WriteFile(victim+ext, []byte(`{"name":"victim"}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	model := filepath.Join(root, "m.onnx")
	os.WriteFile(model, []byte("onnx"), 0o644)
	for _, name := range []string{"../../outside/victim", "../outside/victim", "/etc/passwd", "a/b", `a\b`, "..", ".hidden", ""} {
		if err := s.Remove(name); !errors.Is(err, ErrBadName) {
			t.Errorf("Remove(%q): %v, want ErrBadName", name, err)
		}
		if _, err := s.Get(name); !errors.Is(err, ErrBadName) {
			t.Errorf("Get(%q): %v, want ErrBadName", name, err)
		}
		card := []byte(`{"name":` + quote(name) + `}`)
		if _, err := s.Import(model, card); !errors.Is(err, ErrBadName) {
			t.Errorf("Import with card name %q: %v, want ErrBadName", name, err)
		}
	}
	for _, ext := range []string{".json", ".onnx"} {
		if _, err := os.Stat(victim + ext); err != nil {
			t.Fatalf("file outside the store touched: %v", err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(s.Dir)); len(entries) != 1 {
		t.Fatalf("store parent holds %d entries, want only the store", len(entries))
	}
	// A card whose file field points elsewhere is refused on resolve.
	card := filepath.Join(root, "evil.json")
	os.WriteFile(card, []byte(`{"name":"evil","file":"../outside/victim.onnx","input":"x","normalize":{"scale":1},
		"feature_tensors":[{"tensor":"t","stride":8,"channels":4}]}`), 0o644)
	if _, _, err := Resolve(card); !errors.Is(err, ErrBadName) {
		t.Fatalf("Resolve of a card naming ../: %v, want ErrBadName", err)
	}
	for _, ok := range []string{"mobilenet_v2_imagenet", "wrn50@224", "a-b_c.d+e"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
}

func quote(s string) string {
	b := []byte{'"'}
	for _, c := range []byte(s) {
		if c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return string(append(b, '"'))
}
