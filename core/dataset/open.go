package dataset

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/dmad/workstation/core/progress"
)

// Options controls Open.
type Options struct {
	// Categories selects categories by name; empty means all. An unknown
	// name is an error that lists the available ones.
	Categories []string
	// SkipBad drops invalid samples (and empty categories) with a warning
	// instead of failing; they are listed in Dataset.Skipped.
	SkipBad bool
	// VisASplit names the VisA split CSV under split_csv/ without ".csv":
	// "1cls" (default) or "2cls_fewshot" (or any file with the same columns).
	VisASplit string
	// FullDecode decodes every image and mask completely instead of checking
	// headers and file ends only: slower, but catches corruption inside the
	// data (and truncated TIFF files, which the quick check does not see).
	FullDecode bool
	// Workers is the number of files checked in parallel (default 4).
	Workers int
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
	// Progress, when set, gets a progress.CheckDataset event after each
	// checked sample.
	Progress progress.Func
}

// Open reads the dataset at root; see OpenContext.
func Open(root string, opts Options) (*Dataset, error) {
	return OpenContext(context.Background(), root, opts)
}

// OpenContext reads and validates the dataset at root. The layout is
// detected:
//   - VisA: root holds split_csv/<opts.VisASplit>.csv (columns
//     object,split,label,image,mask; paths relative to root; labels
//     "normal"/"anomaly"). VisA has no defect types: anomalies get "anomaly".
//   - MVTec AD: root holds <category>/train/good/*, <category>/test/<type>/*
//     and <category>/ground_truth/<type>/<stem>_mask.<ext>, or root is itself
//     one such category folder. Images in train/<type> other than good are
//     taken as annotated training defects with masks from ground_truth.
//   - Plain folder: the images directly in root form one unlabeled test
//     category named after the folder.
//
// Every sample is validated (see Options.FullDecode); without
// Options.SkipBad the first problems found are returned as one error
// naming the files.
func OpenContext(ctx context.Context, root string, opts Options) (*Dataset, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("open dataset: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("open dataset %s: not a folder", root)
	}
	ds := &Dataset{Root: root}
	var samples []Sample
	var problems []Problem
	switch {
	case isDir(filepath.Join(root, "split_csv")):
		ds.Layout = LayoutVisA
		name := opts.VisASplit
		if name == "" {
			name = "1cls"
		}
		samples, problems, err = readVisA(root, filepath.Join(root, "split_csv", name+".csv"))
	case isDir(filepath.Join(root, "train")) || isDir(filepath.Join(root, "test")):
		ds.Layout = LayoutMVTec
		abs, aerr := filepath.Abs(root)
		if aerr != nil {
			return nil, fmt.Errorf("open dataset %s: %w", root, aerr)
		}
		samples, problems, err = readMVTecCategory(root, filepath.Base(abs))
	default:
		cats, lerr := mvtecCategories(root)
		if lerr != nil {
			return nil, fmt.Errorf("open dataset %s: %w", root, lerr)
		}
		if len(cats) > 0 {
			ds.Layout = LayoutMVTec
			for _, c := range cats {
				if len(opts.Categories) > 0 && !slices.Contains(opts.Categories, c) {
					// Still list it so that an unknown selection can name it.
					samples = append(samples, Sample{Category: c})
					continue
				}
				s, p, cerr := readMVTecCategory(filepath.Join(root, c), c)
				if cerr != nil {
					return nil, cerr
				}
				if len(s) == 0 {
					samples = append(samples, Sample{Category: c}) // keep the name for the empty check
				}
				samples = append(samples, s...)
				problems = append(problems, p...)
			}
		} else {
			ds.Layout = LayoutFolder
			abs, aerr := filepath.Abs(root)
			if aerr != nil {
				return nil, fmt.Errorf("open dataset %s: %w", root, aerr)
			}
			samples, err = readFolder(root, filepath.Base(abs))
		}
	}
	if err != nil {
		return nil, err
	}

	// Categories present, then the selection.
	catSet := map[string]bool{}
	for _, s := range samples {
		catSet[s.Category] = true
	}
	available := make([]string, 0, len(catSet))
	for c := range catSet {
		available = append(available, c)
	}
	sort.Strings(available)
	selected := available
	if len(opts.Categories) > 0 {
		selected = nil
		for _, c := range opts.Categories {
			if !catSet[c] {
				return nil, fmt.Errorf("open dataset %s: unknown category %q (available: %s)",
					root, c, strings.Join(available, ", "))
			}
			if !slices.Contains(selected, c) {
				selected = append(selected, c)
			}
		}
		sort.Strings(selected)
	}
	samples = slices.DeleteFunc(samples, func(s Sample) bool {
		return s.Path == "" || !slices.Contains(selected, s.Category)
	})

	sortSamples(samples)
	checked, bad, err := validate(ctx, samples, opts)
	if err != nil {
		return nil, err
	}
	problems = append(problems, bad...)

	// Empty categories.
	count := map[string]int{}
	for _, s := range checked {
		count[s.Category]++
	}
	var cats []string
	for _, c := range selected {
		if count[c] == 0 {
			problems = append(problems, Problem{Path: filepath.Join(root, c),
				Err: fmt.Errorf("category %q has no valid images", c)})
			continue
		}
		cats = append(cats, c)
	}

	if len(problems) > 0 {
		if !opts.SkipBad {
			return nil, problemsError(root, problems)
		}
		for _, p := range problems {
			log.Warn("dataset: skipping bad sample", "path", p.Path, "err", p.Err)
		}
		ds.Skipped = problems
	}
	if len(cats) == 0 {
		return nil, fmt.Errorf("open dataset %s: no valid images", root)
	}
	ds.Categories = cats
	ds.Samples = checked
	return ds, nil
}

// problemsError joins the first few problems into one error.
func problemsError(root string, problems []Problem) error {
	const show = 5
	errs := make([]error, 0, show+1)
	for i, p := range problems {
		if i == show {
			errs = append(errs, fmt.Errorf("... and %d more problems", len(problems)-show))
			break
		}
		errs = append(errs, p)
	}
	return fmt.Errorf("open dataset %s: %w", root, errors.Join(errs...))
}

// mvtecCategories lists the sub-folders of root that look like MVTec AD
// categories (they hold train/ or test/).
func mvtecCategories(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var cats []string
	for _, e := range entries {
		if !entryIsDir(root, e) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		d := filepath.Join(root, e.Name())
		if isDir(filepath.Join(d, "train")) || isDir(filepath.Join(d, "test")) {
			cats = append(cats, e.Name())
		}
	}
	sort.Strings(cats)
	return cats, nil
}

// imageNames returns the sorted image file names in dir (not recursive).
func imageNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list images %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if IsImage(e.Name()) && !entryIsDir(dir, e) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") && entryIsDir(dir, e) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

func stem(name string) string { return strings.TrimSuffix(name, filepath.Ext(name)) }

// readMVTecCategory reads one MVTec AD category folder. A defect image whose
// mask is missing is returned as a problem.
func readMVTecCategory(dir, category string) ([]Sample, []Problem, error) {
	var samples []Sample
	var problems []Problem
	for _, split := range []Split{Train, Test} {
		sd := filepath.Join(dir, split.String())
		if !isDir(sd) {
			continue
		}
		types, err := subdirs(sd)
		if err != nil {
			return nil, nil, err
		}
		for _, typ := range types {
			names, err := imageNames(filepath.Join(sd, typ))
			if err != nil {
				return nil, nil, err
			}
			var masks map[string]string
			if typ != GoodType {
				masks, err = maskIndex(filepath.Join(dir, "ground_truth", typ))
				if err != nil {
					return nil, nil, err
				}
			}
			for _, n := range names {
				s := Sample{Path: filepath.Join(sd, typ, n), Category: category, Split: split,
					Label: Good, Defect: typ}
				if typ != GoodType {
					s.Label = Defect
					mp, ok := masks[stem(n)]
					if !ok {
						problems = append(problems, Problem{Path: s.Path, Err: fmt.Errorf(
							"defect image has no mask (looked for %s)",
							filepath.Join(dir, "ground_truth", typ, stem(n)+"_mask.png"))})
						continue
					}
					s.MaskPath = mp
				}
				samples = append(samples, s)
			}
		}
	}
	return samples, problems, nil
}

// maskIndex maps image stems to mask paths in an MVTec ground_truth folder:
// "<stem>_mask.<ext>" (preferred) or "<stem>.<ext>". A missing folder is an
// empty index.
func maskIndex(dir string) (map[string]string, error) {
	idx := map[string]string{}
	if !isDir(dir) {
		return idx, nil
	}
	names, err := imageNames(dir)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		s := stem(n)
		if base, ok := strings.CutSuffix(s, "_mask"); ok {
			idx[base] = filepath.Join(dir, n)
		}
	}
	for _, n := range names {
		if _, ok := idx[stem(n)]; !ok && !strings.HasSuffix(stem(n), "_mask") {
			idx[stem(n)] = filepath.Join(dir, n)
		}
	}
	return idx, nil
}

// readFolder reads a plain folder of images as one unlabeled category.
func readFolder(dir, category string) ([]Sample, error) {
	names, err := imageNames(dir)
	if err != nil {
		return nil, fmt.Errorf("open dataset: %w", err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("open dataset %s: no images and no known dataset layout (MVTec AD, VisA)", dir)
	}
	out := make([]Sample, len(names))
	for i, n := range names {
		out[i] = Sample{Path: filepath.Join(dir, n), Category: category, Split: Test, Label: Unlabeled}
	}
	return out, nil
}

// readVisA reads a VisA split CSV (header object,split,label,image,mask).
func readVisA(root, csvPath string) ([]Sample, []Problem, error) {
	f, err := os.Open(csvPath)
	if err != nil {
		return nil, nil, fmt.Errorf("open VisA split: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("read VisA split %s: %w", csvPath, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	for _, need := range []string{"object", "split", "label", "image", "mask"} {
		if _, ok := col[need]; !ok {
			return nil, nil, fmt.Errorf("read VisA split %s: no %q column (header %v)", csvPath, need, header)
		}
	}
	var samples []Sample
	var problems []Problem
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read VisA split %s: %w", csvPath, err)
		}
		get := func(k string) string {
			if i := col[k]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		s := Sample{Category: get("object")}
		where := fmt.Sprintf("%s:%d", csvPath, line)
		if img := get("image"); img != "" {
			// Paths in the CSV are relative to the dataset and stay inside it.
			if !filepath.IsLocal(filepath.FromSlash(img)) {
				problems = append(problems, Problem{Path: where, Err: fmt.Errorf("image path %q leaves the dataset folder", img)})
				continue
			}
			s.Path = filepath.Join(root, filepath.FromSlash(img))
		}
		switch strings.ToLower(get("split")) {
		case "train":
			s.Split = Train
		case "test":
			s.Split = Test
		default:
			problems = append(problems, Problem{Path: where, Err: fmt.Errorf("unknown split %q", get("split"))})
			continue
		}
		switch strings.ToLower(get("label")) {
		case "normal", "good", "0":
			s.Label, s.Defect = Good, GoodType
		case "anomaly", "abnormal", "defect", "1":
			s.Label, s.Defect = Defect, "anomaly"
			if m := get("mask"); m != "" {
				if !filepath.IsLocal(filepath.FromSlash(m)) {
					problems = append(problems, Problem{Path: where, Err: fmt.Errorf("mask path %q leaves the dataset folder", m)})
					continue
				}
				s.MaskPath = filepath.Join(root, filepath.FromSlash(m))
			}
		default:
			problems = append(problems, Problem{Path: where, Err: fmt.Errorf("unknown label %q", get("label"))})
			continue
		}
		if s.Category == "" || s.Path == "" {
			problems = append(problems, Problem{Path: where, Err: errors.New("empty object or image column")})
			continue
		}
		if s.Label == Defect && s.MaskPath == "" {
			problems = append(problems, Problem{Path: s.Path, Err: fmt.Errorf("defect image has no mask in %s", where)})
			continue
		}
		samples = append(samples, s)
	}
	return samples, problems, nil
}
