package project

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/dmad/workstation/core/dataset"
)

// InspectSamples are the images an inspection of dir scores, for the CLI
// and the desktop application alike: the test images of an MVTec AD or
// VisA folder, or every image under any other folder (recursively,
// following links). Inside an MVTec test folder (sub-folders good/,
// <defect>/) labels and masks are read from the folder names, so
// inspecting <category>/test still yields metrics.
func InspectSamples(ctx context.Context, dir string, log *slog.Logger) ([]dataset.Sample, error) {
	ds, err := dataset.OpenContext(ctx, dir, dataset.Options{Logger: log})
	if err == nil && ds.Layout != dataset.LayoutFolder {
		return ds.Test(), nil
	}
	if errors.Is(err, context.Canceled) {
		return nil, err
	}
	paths, werr := dataset.ListImages(ctx, dir)
	if werr != nil {
		return nil, werr
	}
	if len(paths) == 0 {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("scan %s: no images found", dir)
	}
	out := make([]dataset.Sample, len(paths))
	for i, p := range paths {
		out[i] = folderSample(dir, p)
	}
	return out, nil
}

// folderSample describes an image found under dir: unlabelled, or labelled
// by its MVTec test folder <category>/test/<type>/<name>.
func folderSample(dir, p string) dataset.Sample {
	s := dataset.Sample{Path: p, Category: filepath.Base(dir), Split: dataset.Test, Label: dataset.Unlabeled}
	parent := filepath.Dir(p)
	if filepath.Base(filepath.Dir(parent)) != "test" {
		return s
	}
	typ := filepath.Base(parent)
	cat := filepath.Dir(filepath.Dir(parent))
	s.Category, s.Defect = filepath.Base(cat), typ
	if typ == dataset.GoodType {
		s.Label = dataset.Good
		return s
	}
	s.Label = dataset.Defect
	stem := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
	mp := filepath.Join(cat, "ground_truth", typ, stem+"_mask.png")
	if _, err := os.Stat(mp); err == nil {
		s.MaskPath = mp
	}
	return s
}
