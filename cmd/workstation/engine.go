package main

import (
	"os"

	"errors"
	"flag"
	"fmt"
	"github.com/dmad/workstation/storage"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/project"
)

// DefaultBackbone is the backbone used when --backbone is not given: the
// one a new project records.
var DefaultBackbone = storage.DefaultSettings().Backbone

var errHelp = flag.ErrHelp

// newFlags makes a flag set whose --help prints a description and every
// flag. When basic names some flags, those are listed first under "Basic
// flags" and the rest under "Advanced flags"; desc may end with examples.
func newFlags(name, synopsis, desc string, out io.Writer, basic ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: workstation %s %s\n\n%s\n", name, synopsis, desc)
		printFlags(out, fs, basic)
	}
	return fs
}

// printFlags lists fs's flags as the README writes them (--name VALUE),
// the basic ones first, each default once: flag.PrintDefaults writes
// -name and appends "(default …)" even to a usage text that already says.
func printFlags(w io.Writer, fs *flag.FlagSet, basic []string) {
	var first, rest []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if slices.Contains(basic, f.Name) {
			first = append(first, f)
		} else {
			rest = append(rest, f)
		}
	})
	// Basic flags in the order given.
	slices.SortStableFunc(first, func(a, b *flag.Flag) int {
		return slices.Index(basic, a.Name) - slices.Index(basic, b.Name)
	})
	list := func(title string, flags []*flag.Flag) {
		if len(flags) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, f := range flags {
			value, usage := flag.UnquoteUsage(f)
			// Go's type names read as placeholders people understand.
			switch value {
			case "int", "uint", "int64", "uint64":
				value = "N"
			case "float":
				value = "X"
			case "string":
				value = "VALUE"
			case "duration":
				value = "DURATION"
			}
			head := "  --" + f.Name
			if value != "" {
				head += " " + value
			}
			if !strings.Contains(usage, "(default") && !isZeroDefault(f) {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
			if len(head) <= 22 {
				fmt.Fprintf(w, "%-24s%s\n", head, usage)
			} else {
				fmt.Fprintf(w, "%s\n%24s%s\n", head, "", usage)
			}
		}
	}
	if len(basic) == 0 {
		list("Flags", rest)
		return
	}
	list("Basic flags", first)
	list("Advanced flags", rest)
}

// isZeroDefault reports whether f's default is its type's zero value (not
// worth printing).
func isZeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return true
	}
	return false
}

// parse parses args; --help returns errHelp, a bad flag a usage error.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// engineFlags are the flags every engine command shares.
type engineFlags struct {
	backbone  string
	device    string
	ortLib    string
	threads   int
	inputSize int
	crop      bool
	quiet     bool
	verbose   bool
}

func (f *engineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.backbone, "backbone", DefaultBackbone, "backbone `NAME` from the store (see 'workstation backbone list'), or an ONNX/card FILE")
	fs.StringVar(&f.device, "device", "auto", "execution provider `NAME`: auto, cpu, cuda, directml or webgpu (auto tries cuda, then directml on Windows, then cpu)")
	fs.StringVar(&f.ortLib, "ort-lib", "", "ONNX Runtime shared library `FILE` (default: $ONNXRUNTIME_LIB, then beside the program, then third_party/onnxruntime)")
	fs.IntVar(&f.threads, "threads", runtime.NumCPU(), "`N` CPU threads for ONNX Runtime")
	fs.IntVar(&f.inputSize, "input-size", encoder.DefaultInputSize, "network input side in `PIXELS` (a multiple of 16; 320 gives a 40×40 patch grid)")
	fs.BoolVar(&f.crop, "crop", false, "resize to 256 and centre-crop (the reference preprocessing; hides border defects)")
	fs.BoolVar(&f.quiet, "quiet", false, "hide progress")
	fs.BoolVar(&f.verbose, "verbose", false, "log details (per-stage and per-epoch lines) on stderr; by default only warnings, with progress as a bar")
}

// applyVerbose makes the default logger write Info lines to stderr when
// --verbose is set (main sets Warn: the progress bar shows long work).
func (f *engineFlags) applyVerbose(stderr io.Writer) {
	if f.verbose {
		slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	}
}

// validate checks the engine flags' ranges (a usage error naming the flag).
func (f *engineFlags) validate() error {
	return flagError(project.ValidateEngine(f.threads, f.inputSize))
}

func (f *engineFlags) encoderConfig() encoder.Config {
	return encoder.Config{InputSize: f.inputSize, Crop: f.crop}.WithDefaults()
}

func (f *engineFlags) runtime() (*ort.Runtime, error) {
	dev, err := ort.ParseDevice(f.device)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return ort.Open(ort.Options{LibraryPath: f.ortLib, Threads: f.threads, Device: dev})
}

// openStore opens an existing project file without the engine: read-only
// for export, writable for import. It never creates one.
func openStore(path string, readOnly bool) (*storage.Project, error) {
	if path == "" {
		return nil, usagef("--project is required")
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("project %s: %w", path, err)
	case st.Size() == 0:
		return nil, fmt.Errorf("project %s: the file is empty (0 bytes), not a project", path)
	}
	return storage.Open(path, storage.Options{ReadOnly: readOnly})
}

// searchFlag registers --search on a scoring command: how nearest neighbours
// are found (exact, or the fast cascade) with def as the default.
func searchFlag(fs *flag.FlagSet, def banks.SearchMode) *string {
	return fs.String("search", def.String(), "nearest-neighbour `MODE`: exact (what bench reports) or fast (candidates from the bank lists nearest each patch, re-ranked exactly; on the benchmark image AUROC within 0.001 and pixel AUROC within 0.0001 of exact, scoring 6-13× faster)")
}

// parseSearch reads --search's value (a usage error naming the flag).
func parseSearch(v string) (banks.SearchMode, error) {
	m, err := banks.ParseSearchMode(v)
	if err != nil {
		return 0, usagef("--search: %v", err)
	}
	return m, nil
}
