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

// ScanOptions control which images [InspectSamples] returns.
type ScanOptions struct {
	// SkipBad leaves out images that fail the quick check (unreadable,
	// truncated, over the pixel limit) and lists them in the result's
	// Skipped instead of failing the scan.
	SkipBad bool
	// FullCheck decodes every image completely instead of checking its
	// header and end (dataset.Options.FullDecode, dataset.DecodeImage);
	// it matters with SkipBad.
	FullCheck bool
	// Logger receives the dataset reader's warnings (default slog.Default()).
	Logger *slog.Logger
}

// Scan is what [InspectSamples] found.
type Scan struct {
	Samples []dataset.Sample
	// Skipped are the images left out by ScanOptions.SkipBad.
	Skipped []dataset.Problem
}

// InspectSamples are the images an inspection of dir scores, for the CLI
// and the desktop application alike: the test images of an MVTec AD or
// VisA folder, or every image under any other folder (recursively,
// following links). Inside an MVTec test folder (sub-folders good/,
// <defect>/) labels and masks are read from the folder names, so
// inspecting <category>/test still yields metrics.
func InspectSamples(ctx context.Context, dir string, opts ScanOptions) (*Scan, error) {
	ds, err := dataset.OpenContext(ctx, dir, dataset.Options{Logger: opts.Logger, SkipBad: opts.SkipBad, FullDecode: opts.FullCheck})
	if err == nil && ds.Layout != dataset.LayoutFolder {
		return &Scan{Samples: ds.Test(), Skipped: ds.Skipped}, nil
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
	scan := &Scan{Samples: make([]dataset.Sample, 0, len(paths))}
	for _, p := range paths {
		if opts.SkipBad {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			check := dataset.CheckImage
			if opts.FullCheck {
				check = dataset.DecodeImage
			}
			if _, _, err := check(p); err != nil {
				scan.Skipped = append(scan.Skipped, dataset.Problem{Path: p, Err: err})
				continue
			}
		}
		scan.Samples = append(scan.Samples, folderSample(dir, p))
	}
	if len(scan.Samples) == 0 {
		return nil, fmt.Errorf("scan %s: no readable images (%d skipped)", dir, len(scan.Skipped))
	}
	return scan, nil
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
