// Package backbone manages the backbone networks a user has on this machine,
// in the style of a model store: each backbone is an ONNX file plus its card
// (JSON), kept in the user's data folder. Backbones arrive by import (a file
// the user exported or copied) or by pull (a URL and sha256 named in a card).
package backbone

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/dmad/workstation/core/progress"
)

// CardInfo is the part of a backbone card the store needs; the encoder
// parses the whole card.
type CardInfo struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	URL    string `json:"url,omitempty"`
}

// Store is a folder of backbones: <Dir>/<name>.onnx beside <Dir>/<name>.json.
type Store struct {
	Dir string
}

// DefaultDir is the store folder in the user's data directory:
// $XDG_DATA_HOME (default ~/.local/share) on Linux, %LocalAppData% on
// Windows, ~/Library/Application Support on macOS; then
// dmad-workstation/backbones.
func DefaultDir() (string, error) {
	base, err := DataDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "backbones"), nil
}

// DataDir is the workstation's folder in the user's data directory.
func DataDir() (string, error) {
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		switch runtime.GOOS {
		case "windows":
			base = os.Getenv("LocalAppData")
		case "darwin":
			d, err := os.UserConfigDir()
			if err != nil {
				return "", fmt.Errorf("find data folder: %w", err)
			}
			base = d
		default:
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("find data folder: %w", err)
			}
			base = filepath.Join(home, ".local", "share")
		}
	}
	return filepath.Join(base, "dmad-workstation"), nil
}

// Entry is one stored backbone.
type Entry struct {
	Name      string
	ModelPath string
	CardPath  string
	SHA256    string
	Size      int64
}

// List returns the stored backbones sorted by name.
func (s *Store) List() ([]Entry, error) {
	cards, err := filepath.Glob(filepath.Join(s.Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, c := range cards {
		name := strings.TrimSuffix(filepath.Base(c), ".json")
		e, err := s.Get(name)
		if err != nil {
			continue // a card without its model is not a usable backbone
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ErrNotFound is returned by Get for a backbone the store does not hold.
var ErrNotFound = errors.New("backbone not found")

// ErrBadName is wrapped by the error for a backbone name that could not be
// a file name inside the store ("../x", "a/b", "", …).
var ErrBadName = errors.New("invalid backbone name")

// ValidName checks that name, which comes from a user or from a card, is a
// plain file name stem: letters, digits and . _ - + @, at most 128 bytes, not
// starting with a dot. Every path the store builds from a name is checked
// with it, so no name reaches outside the store (`backbone rm
// ../../outside/victim` deleted files outside it).
func ValidName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return fmt.Errorf("%w %q: 1 to 128 characters, not starting with a dot", ErrBadName, name)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-+@", c)
		if !ok {
			return fmt.Errorf("%w %q: only letters, digits and . _ - + @ are allowed", ErrBadName, name)
		}
	}
	return nil
}

// Get looks up a stored backbone by name.
func (s *Store) Get(name string) (Entry, error) {
	if err := ValidName(name); err != nil {
		return Entry{}, err
	}
	card := filepath.Join(s.Dir, name+".json")
	model := filepath.Join(s.Dir, name+".onnx")
	b, err := os.ReadFile(card)
	if err != nil {
		return Entry{}, fmt.Errorf("backbone %s in %s: %w", name, s.Dir, ErrNotFound)
	}
	var ci CardInfo
	if err := json.Unmarshal(b, &ci); err != nil {
		return Entry{}, fmt.Errorf("backbone card %s: %w", card, err)
	}
	st, err := os.Stat(model)
	if err != nil {
		return Entry{}, fmt.Errorf("backbone %s: model file %s missing: %w", name, model, ErrNotFound)
	}
	return Entry{Name: name, ModelPath: model, CardPath: card, SHA256: ci.SHA256, Size: st.Size()}, nil
}

// Import copies an ONNX file and its card into the store under the card's
// name. The file's sha256 is computed and written into the stored card; when
// the card already names a sha256 that differs, Import refuses.
func (s *Store) Import(modelPath string, card []byte) (Entry, error) {
	var ci CardInfo
	if err := json.Unmarshal(card, &ci); err != nil {
		return Entry{}, fmt.Errorf("backbone card: %w", err)
	}
	if err := ValidName(ci.Name); err != nil {
		return Entry{}, fmt.Errorf("backbone card: %w", err)
	}
	f, err := os.Open(modelPath)
	if err != nil {
		return Entry{}, fmt.Errorf("import backbone: %w", err)
	}
	defer f.Close()
	sum, err := s.write(ci.Name, f, ci.SHA256)
	if err != nil {
		return Entry{}, fmt.Errorf("import backbone %s: %w", modelPath, err)
	}
	return s.writeCard(ci.Name, card, sum)
}

// Pull downloads the backbone a card names (its url field), checking the
// sha256 the card gives. report, when not nil, gets progress.Download
// events counting bytes.
func (s *Store) Pull(ctx context.Context, card []byte, report progress.Func) (Entry, error) {
	var ci CardInfo
	if err := json.Unmarshal(card, &ci); err != nil {
		return Entry{}, fmt.Errorf("backbone card: %w", err)
	}
	if err := ValidName(ci.Name); err != nil {
		return Entry{}, fmt.Errorf("backbone card: %w", err)
	}
	if ci.URL == "" {
		return Entry{}, fmt.Errorf("backbone %s has no download URL: export it yourself (see assets/backbones/README.md) and run `workstation backbone import FILE`", ci.Name)
	}
	if ci.SHA256 == "" {
		return Entry{}, fmt.Errorf("backbone %s card has a URL but no sha256; refusing an unchecked download", ci.Name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ci.URL, nil)
	if err != nil {
		return Entry{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Entry{}, fmt.Errorf("pull backbone %s from %s: %w", ci.Name, ci.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Entry{}, fmt.Errorf("pull backbone %s from %s: %s", ci.Name, ci.URL, resp.Status)
	}
	var r io.Reader = resp.Body
	if report != nil {
		r = &countingReader{r: resp.Body, total: resp.ContentLength, report: report}
	}
	sum, err := s.write(ci.Name, r, ci.SHA256)
	if err != nil {
		return Entry{}, fmt.Errorf("pull backbone %s: %w", ci.Name, err)
	}
	return s.writeCard(ci.Name, card, sum)
}

// Remove deletes a stored backbone.
func (s *Store) Remove(name string) error {
	e, err := s.Get(name)
	if err != nil {
		return err
	}
	if err := os.Remove(e.ModelPath); err != nil {
		return err
	}
	return os.Remove(e.CardPath)
}

// write streams r into <name>.onnx through a temp file, so a failed or
// mismatching transfer never replaces a good file.
func (s *Store) write(name string, r io.Reader, want string) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(s.Dir, name+".*.part")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && !strings.EqualFold(want, sum) {
		return "", fmt.Errorf("sha256 mismatch: card says %s, file is %s", want, sum)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.Dir, name+".onnx")); err != nil {
		return "", err
	}
	return sum, nil
}

func (s *Store) writeCard(name string, card []byte, sum string) (Entry, error) {
	if err := ValidName(name); err != nil {
		return Entry{}, err
	}
	var m map[string]any
	if err := json.Unmarshal(card, &m); err != nil {
		return Entry{}, err
	}
	m["sha256"] = sum
	m["file"] = name + ".onnx"
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Entry{}, err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, name+".json"), b, 0o644); err != nil {
		return Entry{}, err
	}
	return s.Get(name)
}

type countingReader struct {
	r      io.Reader
	done   int64
	total  int64
	report progress.Func
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.done += int64(n)
	c.report(progress.Event{Stage: progress.Download, Done: int(c.done), Total: int(c.total)})
	return n, err
}
