package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/dmad/workstation"
	"github.com/dmad/workstation/assets"
	"github.com/dmad/workstation/core/backbone"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/project"
)

func runBackbone(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const help = `Usage: workstation backbone COMMAND

Commands:
  list                         backbones installed in the store, and known cards
  import FILE.onnx [--card C]  copy a backbone into the store (card: FILE.json beside it, or --card)
  pull NAME                    download a known backbone (its card's URL, sha256 checked)
  show NAME                    print a backbone's card
  rm NAME                      remove a backbone from the store

Names are looked up in models/ beside the program (a download bundle), then in the store,
` + "`$XDG_DATA_HOME/dmad-workstation/backbones`" + ` (--store DIR overrides).
Export recipes for ResNet-18 and WideResNet-50-2 are in assets/backbones/README.md.`
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, help)
		if len(args) == 0 {
			return usagef("a backbone command is required")
		}
		return nil
	}
	fs := newFlags("backbone "+args[0], "", help, stderr)
	storeDir := fs.String("store", "", "store `DIR` (default: the user's data folder)")
	cardPath := fs.String("card", "", "card `FILE` for import (default: beside the ONNX file)")
	// Positional arguments may come before or after flags.
	var pos []string
	rest := args[1:]
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			if err == errHelp {
				return errHelp
			}
			return usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	dir := *storeDir
	if dir == "" {
		d, err := backbone.DefaultDir()
		if err != nil {
			return err
		}
		dir = d
	}
	c := backboneCmd{ctx: ctx, st: &backbone.Store{Dir: dir}, pos: pos, cardPath: *cardPath, customStore: *storeDir != "", stdout: stdout, stderr: stderr}
	sub := map[string]struct {
		args int
		run  func() error
	}{"list": {0, c.list}, "import": {1, c.importFile}, "pull": {1, c.pull}, "show": {1, c.show}, "rm": {1, c.rm}}
	cmd, ok := sub[args[0]]
	if !ok {
		return usagef("unknown backbone command %q (want list, import, pull, show, rm)", args[0])
	}
	if len(pos) != cmd.args {
		return usagef("backbone %s takes %d argument(s), got %d", args[0], cmd.args, len(pos))
	}
	return cmd.run()
}

// backboneCmd is one 'workstation backbone' subcommand's context.
type backboneCmd struct {
	ctx            context.Context
	st             *backbone.Store
	pos            []string // positional arguments
	cardPath       string   // --card
	customStore    bool     // --store was given: bundled backbones are not listed
	stdout, stderr io.Writer
}

func (c backboneCmd) list() error {
	entries, err := c.st.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tSHA256\tSTATUS")
	have := map[string]bool{}
	for _, e := range entries {
		have[e.Name] = true
		fmt.Fprintf(tw, "%s\t%.1f MB\t%.12s\tinstalled\n", e.Name, float64(e.Size)/1e6, e.SHA256)
	}
	// Backbones shipped beside the program need no import.
	if bd := backbone.BundledDir(); bd != "" && !c.customStore {
		bundled, _ := (&backbone.Store{Dir: bd}).List()
		for _, e := range bundled {
			if !have[e.Name] {
				have[e.Name] = true
				fmt.Fprintf(tw, "%s\t%.1f MB\t%.12s\tbundled\n", e.Name, float64(e.Size)/1e6, e.SHA256)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(assets.BackboneCards())) {
		if !have[name] {
			fmt.Fprintf(tw, "%s\t-\t-\tnot installed (known card)\n", name)
		}
	}
	return tw.Flush()
}

func (c backboneCmd) importFile() error {
	file := c.pos[0]
	cp := c.cardPath
	if cp == "" {
		cp = strings.TrimSuffix(file, ".onnx") + ".json"
	}
	card, err := os.ReadFile(cp)
	if err != nil {
		return fmt.Errorf("backbone card for %s: %w (pass --card FILE.json)", file, err)
	}
	parsed, err := encoder.ParseCard(card)
	if err != nil {
		return fmt.Errorf("backbone card %s: %w", cp, err)
	}
	// Check the network against its card before storing it: the feature
	// tensors must exist with the strides the card promises.
	model, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("import backbone: %w", err)
	}
	if err := checkBackbone(parsed, model); err != nil {
		return fmt.Errorf("import backbone %s: %w", file, err)
	}
	e, err := c.st.Import(file, card)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "imported %s (%.1f MB, sha256 %.12s) into %s\n", e.Name, float64(e.Size)/1e6, e.SHA256, c.st.Dir)
	return nil
}

func (c backboneCmd) pull() error {
	card, ok := assets.BackboneCard(c.pos[0])
	if !ok {
		return fmt.Errorf("no card for backbone %q; known: %s", c.pos[0], strings.Join(knownCards(), ", "))
	}
	pr := newProgress(c.stderr, false)
	e, err := c.st.Pull(c.ctx, card, func(e progress.Event) {
		pr.Update(e.Stage.String(), e.Done>>20, e.Total>>20, "MiB")
	})
	pr.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "pulled %s into %s\n", e.Name, c.st.Dir)
	return nil
}

func (c backboneCmd) show() error {
	if e, err := c.st.Get(c.pos[0]); err == nil {
		b, err := os.ReadFile(e.CardPath)
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(b)
		fmt.Fprintln(c.stdout)
		return err
	}
	card, ok := assets.BackboneCard(c.pos[0])
	if !ok {
		return fmt.Errorf("backbone %q is neither installed nor known; known: %s", c.pos[0], strings.Join(knownCards(), ", "))
	}
	_, err := c.stdout.Write(card)
	return err
}

func (c backboneCmd) rm() error {
	if err := c.st.Remove(c.pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "removed %s\n", c.pos[0])
	return nil
}

func knownCards() []string {
	var names []string
	for n := range assets.BackboneCards() {
		names = append(names, n)
	}
	return names
}

// checkBackbone builds the feature graph once on the CPU to prove the card
// fits the network.
func checkBackbone(card *encoder.Card, model []byte) error {
	rt, err := ort.Open(ort.Options{Threads: 1, Device: ort.DeviceCPU})
	if err != nil {
		return err
	}
	defer rt.Close()
	enc, err := encoder.New(rt, card, model, encoder.Config{})
	if err != nil {
		return err
	}
	return enc.Close()
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "workstation %s\n", workstation.Version())
	if lib, err := ort.FindLibrary(""); err == nil {
		if rt, err := ort.Open(ort.Options{Threads: 1, Device: ort.DeviceCPU}); err == nil {
			fmt.Fprintf(stdout, "ONNX Runtime %s (%s)\n", rt.Version(), lib)
			rt.Close()
		}
	} else {
		fmt.Fprintf(stdout, "ONNX Runtime: %v\n", err)
	}
	return nil
}

func runExportModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export-model", "--project P"+workstation.ProjectExt+" --out MODEL"+workstation.ModelExt+" [--model N]",
		"Writes a trained model (backbone id, banks, mapper, thresholds) to one file that\n"+
			"'workstation import-model' adds to a project on another station. A --out without an\n"+
			"extension gets "+workstation.ModelExt+" (projects are "+workstation.ProjectExt+"; files of either named "+workstation.LegacyExt+"\n"+
			"by earlier versions still open and import).\n\n"+
			"Example:\n  workstation export-model --project line1"+workstation.ProjectExt+" --out line1-v3"+workstation.ModelExt+" --model 3", stderr)
	proj := fs.String("project", "", "project `FILE`")
	out := fs.String("out", "", "model `FILE` to write")
	version := fs.Int("model", 0, "model `VERSION` (default: the active one)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *proj == "" || *out == "" {
		return usagef("--project and --out are required")
	}
	if filepath.Ext(*out) == "" {
		*out += workstation.ModelExt
	}
	p, err := openStore(*proj, true)
	if err != nil {
		return err
	}
	defer p.Close()
	v := *version
	if v == 0 {
		rec, err := p.ActiveModel()
		if err != nil {
			return fmt.Errorf("project %s has no active model: %w", *proj, err)
		}
		v = rec.Version
	}
	tmp := *out + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := p.ExportModel(ctx, v, f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exported model %d to %s\n", v, *out)
	return nil
}

func runImportModel(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("import-model", "--project P"+workstation.ProjectExt+" --in MODEL"+workstation.ModelExt+" [--activate]",
		"Adds a model file written by 'workstation export-model' ("+workstation.ModelExt+", or "+workstation.LegacyExt+" from earlier\n"+
			"versions) to a project. A model trained on another backbone than the project's is refused.", stderr)
	proj := fs.String("project", "", "project `FILE` (created when missing)")
	in := fs.String("in", "", "model `FILE` to read")
	activate := fs.Bool("activate", true, "make the imported model the active one")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *proj == "" || *in == "" {
		return usagef("--project and --in are required")
	}
	f, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("import model: %w", err)
	}
	defer f.Close()
	// No runtime: importing decodes the model but runs nothing.
	sess, created, err := project.Open(*proj, project.OpenOptions{Create: true}, nil, nil)
	if err != nil {
		return err
	}
	defer func() {
		sess.Close()
		if created && err != nil {
			os.Remove(*proj) // a failed import leaves no empty project behind
		}
	}()
	v, err := sess.ImportModel(ctx, f, *in, project.ImportOptions{Activate: *activate, AdoptBackbone: created})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %s as model %d of %s\n", *in, v, *proj)
	return nil
}
