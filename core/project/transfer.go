package project

import (
	"context"
	"fmt"
	"io"

	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/storage"
)

// ImportModel adds a model file written by ExportModel (`workstation
// export-model`) as a new version and returns it; activate makes it the
// active model. A project without images and models adopts the model's
// backbone; any other project refuses a model of another backbone. The
// model is decoded before the call returns: checksums only prove the file
// arrived as written, and a crafted or damaged model that imported would
// fail every later command, so such a model is removed again and the error
// says why. name labels the file in errors.
func (s *Session) ImportModel(ctx context.Context, r io.Reader, name string, activate bool) (version int, err error) {
	p := s.Store
	models, err := p.Models()
	if err != nil {
		return 0, err
	}
	imgs, err := p.Images(storage.ImageFilter{})
	if err != nil {
		return 0, err
	}
	adopt := len(models) == 0 && len(imgs) == 0
	before := p.Settings()
	if adopt && before.Backbone != "" {
		st := before
		st.Backbone = "" // accept the model's backbone
		if err := p.PutSettings(st); err != nil {
			return 0, err
		}
		defer func() {
			if err != nil {
				p.PutSettings(before) // the project stays as it was
			}
		}()
	}
	v, err := p.ImportModel(ctx, r)
	if err != nil {
		return 0, fmt.Errorf("import model %s: %w", name, err)
	}
	if _, err := pipeline.LoadModel(func(part string) (io.ReadCloser, error) { return p.OpenModelPart(v, part) }); err != nil {
		if derr := p.DeleteModel(v); derr != nil {
			return 0, fmt.Errorf("import model %s: %w (and removing it failed: %v)", name, err, derr)
		}
		return 0, fmt.Errorf("import model %s: not imported, the model does not decode: %w", name, err)
	}
	if adopt {
		rec, err := p.Model(v)
		if err != nil {
			return 0, err
		}
		st := p.Settings()
		st.Backbone = rec.BackboneID
		if err := p.PutSettings(st); err != nil {
			return 0, err
		}
	}
	if activate {
		if err := p.SetActiveModel(v); err != nil {
			return 0, err
		}
	}
	return v, nil
}
