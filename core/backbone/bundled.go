package backbone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// BundledDirName is the folder beside the executable that holds the
// backbones shipped in a bundle, laid out like a [Store].
const BundledDirName = "models"

// BundledDir is the bundle's backbone folder: models/ beside the executable
// (symlinks to the executable resolved). It returns "" when the executable
// cannot be located; the folder itself may be absent.
func BundledDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return filepath.Join(filepath.Dir(exe), BundledDirName)
}

// Stores are the places a backbone name is looked up, in order: the bundle's
// models/ folder beside the executable (ready with no import step), then the
// user's store (imported or pulled backbones).
func Stores() ([]*Store, error) {
	var out []*Store
	if d := BundledDir(); d != "" {
		out = append(out, &Store{Dir: d})
	}
	d, err := DefaultDir()
	if err != nil {
		return nil, err
	}
	return append(out, &Store{Dir: d}), nil
}

// Lookup finds a backbone by name in stores, in order. The error says where it looked.
func Lookup(stores []*Store, name string) (Entry, error) {
	var dirs []string
	for _, s := range stores {
		e, err := s.Get(name)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Entry{}, err // a broken card is worth reporting, not skipping
		}
		dirs = append(dirs, s.Dir)
	}
	return Entry{}, fmt.Errorf("backbone %s not found in %v: %w", name, dirs, ErrNotFound)
}
