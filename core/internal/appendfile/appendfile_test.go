package appendfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenRepairsPartialLastLine(t *testing.T) {
	long := strings.Repeat("x", 9000) // longer than one read block
	for _, tc := range []struct{ name, before, after string }{
		{"new", "", "next\n"},
		{"clean", "a\nb\n", "a\nb\nnext\n"},
		{"partial", "a\nb\npart", "a\nb\nnext\n"},
		{"only partial", "part", "next\n"},
		{"long partial", "a\n" + long, "a\nnext\n"},
		{"long clean", long + "\n", long + "\nnext\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			if tc.before != "" {
				if err := os.WriteFile(path, []byte(tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("next\n"); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.after {
				t.Errorf("file = %q, want %q", got, tc.after)
			}
		})
	}
}

func TestOpenMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "log")
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open(%s) error = %v, want one naming the path", path, err)
	}
}
