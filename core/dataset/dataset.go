// Package dataset reads anomaly-detection datasets from disk: the MVTec AD
// folder layout, the VisA split CSVs and plain folders of images. It
// validates them (missing masks, mask/image size mismatches, unreadable or
// truncated files, empty categories) by reading file headers only, and makes
// the semi-supervised split of the DMAD protocol (METHOD.md §6).
package dataset

import (
	"slices"
	"sort"
)

// Split says whether a sample is used for training or for testing.
type Split int

// Splits.
const (
	Train Split = iota
	Test
)

// String returns "train" or "test".
func (s Split) String() string {
	if s == Train {
		return "train"
	}
	return "test"
}

// Label is the ground truth of a sample.
type Label int

// Labels. Unlabeled is used for plain folders of images to inspect.
const (
	Unlabeled Label = iota
	Good
	Defect
)

// String returns "unlabeled", "good" or "defect".
func (l Label) String() string {
	switch l {
	case Good:
		return "good"
	case Defect:
		return "defect"
	}
	return "unlabeled"
}

// GoodType is the Defect field of normal samples.
const GoodType = "good"

// Layouts reported in Dataset.Layout.
const (
	LayoutMVTec  = "mvtec"
	LayoutVisA   = "visa"
	LayoutFolder = "folder"
)

// Sample is one image of a dataset.
type Sample struct {
	Path     string // image file
	MaskPath string // ground-truth mask file; empty for normal and unlabeled images
	Category string
	Split    Split
	Label    Label
	Defect   string // defect type ("good" for normal images, "" when unlabeled)
	Width    int    // image width from the file header (EXIF orientation applied)
	Height   int    // image height
}

// Problem is a file that failed validation and why.
type Problem struct {
	Path string
	Err  error
}

// Error returns "path: reason".
func (p Problem) Error() string { return p.Path + ": " + p.Err.Error() }

// Unwrap returns the reason.
func (p Problem) Unwrap() error { return p.Err }

// Dataset is a validated set of samples, sorted by category, split and path.
type Dataset struct {
	Root       string
	Layout     string   // LayoutMVTec, LayoutVisA or LayoutFolder
	Categories []string // sorted
	Samples    []Sample
	Skipped    []Problem // samples dropped by Options.SkipBad
}

// Clone returns a deep copy of d.
func (d *Dataset) Clone() *Dataset {
	c := *d
	c.Categories = slices.Clone(d.Categories)
	c.Samples = slices.Clone(d.Samples)
	c.Skipped = slices.Clone(d.Skipped)
	return &c
}

// Select returns the samples for which keep returns true, in order.
func (d *Dataset) Select(keep func(Sample) bool) []Sample {
	var out []Sample
	for _, s := range d.Samples {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// ByCategory returns the samples of one category.
func (d *Dataset) ByCategory(category string) []Sample {
	return d.Select(func(s Sample) bool { return s.Category == category })
}

// Train returns the training samples of all categories.
func (d *Dataset) Train() []Sample {
	return d.Select(func(s Sample) bool { return s.Split == Train })
}

// Test returns the test samples of all categories.
func (d *Dataset) Test() []Sample {
	return d.Select(func(s Sample) bool { return s.Split == Test })
}

// DefectTypes returns the sorted defect types of a category's anomalous
// samples (both splits).
func (d *Dataset) DefectTypes(category string) []string {
	seen := map[string]bool{}
	for _, s := range d.Samples {
		if s.Category == category && s.Label == Defect {
			seen[s.Defect] = true
		}
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Counts is the number of samples of each kind in a category.
type Counts struct {
	TrainGood, TrainDefect, TestGood, TestDefect, Unlabeled int
}

// Count returns the sample counts of a category ("" = all categories).
func (d *Dataset) Count(category string) Counts {
	var c Counts
	for _, s := range d.Samples {
		if category != "" && s.Category != category {
			continue
		}
		switch {
		case s.Label == Unlabeled:
			c.Unlabeled++
		case s.Split == Train && s.Label == Good:
			c.TrainGood++
		case s.Split == Train:
			c.TrainDefect++
		case s.Label == Good:
			c.TestGood++
		default:
			c.TestDefect++
		}
	}
	return c
}

func sortSamples(ss []Sample) {
	sort.SliceStable(ss, func(i, j int) bool {
		a, b := ss[i], ss[j]
		if a.Category != b.Category {
			return a.Category < b.Category
		}
		if a.Split != b.Split {
			return a.Split < b.Split
		}
		return a.Path < b.Path
	})
}
