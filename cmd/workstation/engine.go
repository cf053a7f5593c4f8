package main

import (
	"os"
	"path/filepath"
	"strings"

	"errors"
	"flag"
	"fmt"
	"github.com/dmad/workstation/storage"
	"io"
	"runtime"

	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/ort"
)

// DefaultBackbone is the backbone used when --backbone is not given.
const DefaultBackbone = "mobilenet_v2_imagenet"

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

// openStore opens a project file without the engine (export, import).
func openStore(path string) (*storage.Project, error) {
	if _, err := os.Stat(path); err != nil {
		return storage.Create(path, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	}
	return storage.Open(path, storage.Options{})
}
