package dataset

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestOpenFollowsSymlinks: a dataset whose category folders (and a defect
// type folder) are symbolic links opens like the real thing.
func TestOpenFollowsSymlinks(t *testing.T) {
	real := t.TempDir()
	makeMVTec(t, filepath.Join(real, "bolt"), 3, 2, map[string]int{"crack": 2})
	makeMVTec(t, filepath.Join(real, "nut"), 2, 1, map[string]int{"hole": 1})
	root := t.TempDir()
	for _, c := range []string{"bolt", "nut"} {
		if err := os.Symlink(filepath.Join(real, c), filepath.Join(root, c)); err != nil {
			t.Skipf("symlinks unsupported here: %v", err)
		}
	}
	// A link back to root must not make anything loop.
	if err := os.Symlink(root, filepath.Join(root, "loop")); err != nil {
		t.Fatal(err)
	}
	ds, err := Open(root, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Layout != LayoutMVTec || !slices.Equal(ds.Categories, []string{"bolt", "nut"}) {
		t.Fatalf("layout %q categories %v", ds.Layout, ds.Categories)
	}
	if got := ds.Count("bolt"); got != (Counts{TrainGood: 3, TestGood: 2, TestDefect: 2}) {
		t.Errorf("bolt counts %+v", got)
	}

	// A plain folder listed recursively follows links once each.
	paths, err := ListImages(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	// bolt: 3+2+2 images, nut: 2+1+1; ground_truth folders are skipped.
	if len(paths) != 11 {
		t.Errorf("ListImages found %d images, want 11: %v", len(paths), paths)
	}
}
