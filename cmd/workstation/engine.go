package main

import (
	"os"

	"errors"
	"flag"
	"fmt"
	"github.com/dmad/workstation/storage"
	"io"
	"runtime"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/project"
)

// DefaultBackbone is the backbone used when --backbone is not given: the
// one a new project records.
var DefaultBackbone = storage.DefaultSettings().Backbone

var errHelp = flag.ErrHelp

// newFlags makes a flag set whose --help prints a description and every flag.
func newFlags(name, synopsis, desc string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: workstation %s %s\n\n%s\n\nFlags:\n", name, synopsis, desc)
		fs.PrintDefaults()
	}
	return fs
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
}

func (f *engineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.backbone, "backbone", DefaultBackbone, "backbone `NAME` from the store (see 'workstation backbone list'), or an ONNX/card FILE")
	fs.StringVar(&f.device, "device", "auto", "execution provider: auto, cpu, cuda, directml or webgpu (auto tries cuda, then directml on Windows, then cpu)")
	fs.StringVar(&f.ortLib, "ort-lib", "", "ONNX Runtime shared library `FILE` (default: $ONNXRUNTIME_LIB, then beside the program, then third_party/onnxruntime)")
	fs.IntVar(&f.threads, "threads", runtime.NumCPU(), "CPU threads for ONNX Runtime")
	fs.IntVar(&f.inputSize, "input-size", encoder.DefaultInputSize, "network input side in pixels (a multiple of 16; 320 gives a 40×40 patch grid)")
	fs.BoolVar(&f.crop, "crop", false, "resize to 256 and centre-crop (the reference preprocessing; hides border defects)")
	fs.BoolVar(&f.quiet, "quiet", false, "hide progress")
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
	return fs.String("search", def.String(), "nearest-neighbour `MODE`: exact (what bench reports) or fast (projected candidates re-ranked exactly; same metrics to 4 decimals on the benchmark, 2-4× faster search)")
}

// parseSearch reads --search's value (a usage error naming the flag).
func parseSearch(v string) (banks.SearchMode, error) {
	m, err := banks.ParseSearchMode(v)
	if err != nil {
		return 0, usagef("--search: %v", err)
	}
	return m, nil
}
