package dataset

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ImageExts are the image file extensions every part of the workstation
// recognises (lower case, with the dot).
var ImageExts = []string{".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}

// IsImage reports whether a file name has an image extension (hidden files
// are not images).
func IsImage(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	return slices.Contains(ImageExts, strings.ToLower(filepath.Ext(name)))
}

// isDir reports whether p is a folder, following symbolic links.
func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// entryIsDir reports whether the entry e of dir is a folder or a symbolic
// link to one: datasets are often assembled from links to category folders.
func entryIsDir(dir string, e fs.DirEntry) bool {
	if e.Type()&fs.ModeSymlink != 0 {
		return isDir(filepath.Join(dir, e.Name()))
	}
	return e.IsDir()
}

// ListImages lists the image files under dir, recursively and sorted,
// following symbolic links to folders; a folder reached twice (a link loop,
// or two links to one place) is read once. Hidden folders and MVTec
// ground_truth folders are skipped.
func ListImages(ctx context.Context, dir string) ([]string, error) {
	var out []string
	visited := map[string]bool{}
	var walk func(d string) error
	walk = func(d string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		real, err := filepath.EvalSymlinks(d)
		if err != nil {
			return err
		}
		if visited[real] {
			return nil
		}
		visited[real] = true
		entries, err := os.ReadDir(d)
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := e.Name()
			p := filepath.Join(d, name)
			switch {
			case entryIsDir(d, e):
				if strings.HasPrefix(name, ".") || name == "ground_truth" {
					continue
				}
				if err := walk(p); err != nil {
					return err
				}
			case IsImage(name):
				out = append(out, p)
			}
		}
		return nil
	}
	if err := walk(dir); err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	slices.Sort(out)
	return out, nil
}
