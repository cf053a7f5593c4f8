package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/dmad/workstation/assets"
	"github.com/dmad/workstation/core/backbone"
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
	fs.StringVar(&f.device, "device", "auto", "execution provider: auto, cpu, cuda or directml (auto falls back to cpu)")
	fs.StringVar(&f.ortLib, "ort-lib", "", "ONNX Runtime shared library `FILE` (default: $ONNXRUNTIME_LIB, then third_party/onnxruntime)")
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

// resolveBackbone finds a backbone's card and ONNX bytes from a store name,
// an ONNX file (card beside it, same stem, .json) or a card file (ONNX named
// by its "file" field, beside it).
func resolveBackbone(spec string) (*encoder.Card, []byte, error) {
	var cardPath, modelPath string
	switch {
	case strings.HasSuffix(spec, ".onnx"):
		modelPath = spec
		cardPath = strings.TrimSuffix(spec, ".onnx") + ".json"
		if _, err := os.Stat(cardPath); err != nil {
			return nil, nil, fmt.Errorf("backbone %s: no card %s beside it (write one; see assets/backbones)", spec, cardPath)
		}
	case strings.HasSuffix(spec, ".json"):
		cardPath = spec
	default:
		dir, err := backbone.DefaultDir()
		if err != nil {
			return nil, nil, err
		}
		e, err := (&backbone.Store{Dir: dir}).Get(spec)
		if err != nil {
			hint := "run 'workstation backbone import FILE.onnx' (with FILE.json beside it)"
			if _, known := assets.BackboneCard(spec); known {
				hint = fmt.Sprintf("'workstation backbone pull %s' downloads it where its card has a URL; otherwise export it (assets/backbones/README.md) and 'workstation backbone import FILE.onnx'", spec)
			}
			return nil, nil, fmt.Errorf("backbone %s is not installed in %s: %s", spec, dir, hint)
		}
		cardPath, modelPath = e.CardPath, e.ModelPath
	}
	card, err := encoder.LoadCard(cardPath)
	if err != nil {
		return nil, nil, err
	}
	if modelPath == "" {
		if card.File == "" {
			return nil, nil, fmt.Errorf("backbone card %s names no file", cardPath)
		}
		modelPath = filepath.Join(filepath.Dir(cardPath), card.File)
	}
	model, err := encoder.ReadBackbone(modelPath, card)
	if err != nil {
		return nil, nil, err
	}
	return card, model, nil
}
