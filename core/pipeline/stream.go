package pipeline

import (
	"context"
	"fmt"

	"github.com/dmad/workstation/core/mat"
)

// features returns the image's features: those in memory, or read by Load
// (checked against Patches).
func (im Image) features() (*mat.Matrix, error) {
	if im.Features != nil {
		return im.Features, nil
	}
	if im.Load == nil {
		return nil, fmt.Errorf("image %d (%s) has no features", im.ID, im.Category)
	}
	m, err := im.Load()
	if err != nil {
		return nil, fmt.Errorf("features of image %d (%s): %w", im.ID, im.Category, err)
	}
	if m == nil || m.Rows() != im.Patches {
		return nil, fmt.Errorf("features of image %d (%s): %d patches, want %d", im.ID, im.Category, rowsOf(m), im.Patches)
	}
	return m, nil
}

// rows is the image's patch count, known without reading its features.
func (im Image) rows() int {
	if im.Features != nil {
		return im.Features.Rows()
	}
	return im.Patches
}

func rowsOf(m *mat.Matrix) int {
	if m == nil {
		return 0
	}
	return m.Rows()
}

// ImageRows is the patch features of images, one image after another, as
// a banks.RowSource: a pass reads one image at a time.
type ImageRows struct {
	Images []Image
	// Dim is the feature dimension.
	Dim int
}

// Rows is the patch count of all images.
func (r ImageRows) Rows() int {
	n := 0
	for _, im := range r.Images {
		n += im.rows()
	}
	return n
}

// Cols is the feature dimension.
func (r ImageRows) Cols() int { return r.Dim }

// Each hands out each image's features as one block.
func (r ImageRows) Each(ctx context.Context, fn func(lo int, block *mat.Matrix) error) error {
	lo := 0
	for _, im := range r.Images {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := im.features()
		if err != nil {
			return err
		}
		if f.Cols() != r.Dim {
			return fmt.Errorf("image %d (%s) has features of dimension %d, want %d", im.ID, im.Category, f.Cols(), r.Dim)
		}
		if err := fn(lo, f); err != nil {
			return err
		}
		lo += f.Rows()
	}
	return nil
}
