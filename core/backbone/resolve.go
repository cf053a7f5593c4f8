package backbone

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dmad/workstation/assets"
	"github.com/dmad/workstation/core/encoder"
)

// ErrNotInstalled marks a backbone name found neither beside the program nor
// in the user's store; the GUI answers it by offering an import.
var ErrNotInstalled = errors.New("backbone not installed")

// Resolve finds a backbone's card and ONNX bytes from a spec: a name in the
// default store, an ONNX file (its card beside it: same stem, .json), or a
// card file (the ONNX its "file" field names, beside it). The sha256 a card
// gives is checked.
//
// A name is looked up in the bundle's models/ folder beside the executable,
// then in the user's store (see [Stores]).
func Resolve(spec string) (*encoder.Card, []byte, error) {
	var cardPath, modelPath string
	switch {
	case strings.HasSuffix(spec, ".onnx"):
		modelPath = spec
		cardPath = strings.TrimSuffix(spec, ".onnx") + ".json"
		if _, err := os.Stat(modelPath); err != nil {
			// Name the missing model, not the card that would sit beside it.
			return nil, nil, fmt.Errorf("backbone %s: %w", spec, errors.Unwrap(err))
		}
		if _, err := os.Stat(cardPath); err != nil {
			return nil, nil, fmt.Errorf("backbone %s: no card %s beside it (write one; see assets/backbones)", spec, cardPath)
		}
	case strings.HasSuffix(spec, ".json"):
		cardPath = spec
	default:
		stores, err := Stores()
		if err != nil {
			return nil, nil, err
		}
		e, err := Lookup(stores, spec)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				return nil, nil, err
			}
			hint := "import it: 'workstation backbone import FILE.onnx' (with FILE.json beside it), or Import backbone… in the application"
			if _, known := assets.BackboneCard(spec); known {
				hint = fmt.Sprintf("import its ONNX file ('workstation backbone import %s.onnx', FILE.json beside it, or Import backbone… in the application); 'workstation backbone pull %s' works only where its card has a URL; export recipes: assets/backbones/README.md", spec, spec)
			}
			return nil, nil, fmt.Errorf("%w: %s (looked in %s and %s); %s",
				ErrNotInstalled, spec, stores[0].Dir, stores[len(stores)-1].Dir, hint)
		}
		cardPath, modelPath = e.CardPath, e.ModelPath
	}
	card, err := encoder.LoadCard(cardPath)
	if err != nil {
		return nil, nil, err
	}
	if modelPath == "" {
		if card.File == "" {
			return nil, nil, fmt.Errorf("backbone card %s names no file", cardPath)
		}
		// The card may come from anyone: its file must lie beside it.
		if card.File != filepath.Base(card.File) || card.File == ".." || card.File == "." || strings.ContainsAny(card.File, `/\`) {
			return nil, nil, fmt.Errorf("backbone card %s: file %q must be a file name beside the card: %w", cardPath, card.File, ErrBadName)
		}
		modelPath = filepath.Join(filepath.Dir(cardPath), card.File)
	}
	model, err := encoder.ReadBackbone(modelPath, card)
	if err != nil {
		return nil, nil, err
	}
	return card, model, nil
}

// Install makes spec available by name: a store name is returned as it is;
// an ONNX or card file is checked against its card (sha256) and copied into
// the default store under the card's name, which is returned.
func Install(spec string) (string, error) {
	if !strings.HasSuffix(spec, ".onnx") && !strings.HasSuffix(spec, ".json") {
		return spec, nil
	}
	card, model, err := Resolve(spec)
	if err != nil {
		return "", err
	}
	dir, err := DefaultDir()
	if err != nil {
		return "", err
	}
	st := &Store{Dir: dir}
	if stores, err := Stores(); err == nil {
		if e, err := Lookup(stores, card.Name); err == nil && card.SHA256 != "" && strings.EqualFold(e.SHA256, card.SHA256) {
			return card.Name, nil // already there, bundled or imported
		}
	}
	cardJSON, err := json.Marshal(card)
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp("", "backbone-*.onnx")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(model); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if _, err := st.Import(tmp.Name(), cardJSON); err != nil {
		return "", err
	}
	return card.Name, nil
}
