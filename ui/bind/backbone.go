package bind

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dmad/workstation/core/backbone"
	"github.com/dmad/workstation/storage"
)

// optBackbone is Options.Backbone, which ImportBackbone may change.
func (e *Engine) optBackbone() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.o.Backbone
}

// backboneSpec is the backbone new projects get: Options.Backbone, or the
// storage default.
func (e *Engine) backboneSpec() string {
	if b := e.optBackbone(); b != "" {
		return b
	}
	return storage.DefaultSettings().Backbone
}

// CheckBackbone implements ui.BackboneImporter: nil when the backbone of new
// projects resolves (bundled beside the program, imported into the user's
// store, or a file), else why not.
func (e *Engine) CheckBackbone() error {
	_, _, err := backbone.Resolve(e.backboneSpec())
	return err
}

// ImportBackbone implements ui.BackboneImporter: it checks an ONNX file
// against its card (FILE.json beside it), copies both into the user's store
// and makes the backbone the one of new projects.
func (e *Engine) ImportBackbone(path string) (string, error) {
	if !strings.HasSuffix(path, ".onnx") && !strings.HasSuffix(path, ".json") {
		return "", fmt.Errorf("import backbone %s: choose an .onnx file (its card, the .json of the same name, beside it)", path)
	}
	name, err := backbone.Install(path)
	if err != nil {
		return "", fmt.Errorf("import backbone: %w", err)
	}
	if _, _, err := backbone.Resolve(name); err != nil {
		return "", fmt.Errorf("import backbone %s: %w", path, err)
	}
	e.mu.Lock()
	e.o.Backbone = name
	e.mu.Unlock()
	return name, nil
}

// MissingBackbone implements ui.BackboneImporter: err says that a backbone
// is not installed.
func (e *Engine) MissingBackbone(err error) bool {
	return errors.Is(err, backbone.ErrNotInstalled)
}
