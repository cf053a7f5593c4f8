package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"github.com/dmad/workstation/storage"
)

// errDamaged makes `check` exit non-zero after printing its report.
var errDamaged = errors.New("project damaged")

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "--project P",
		"Verifies a project file completely, read-only: its length against its header, bbolt's page\n"+
			"check (page types, key order, reachability, free list), every bucket and the key-count\n"+
			"manifest, and the checksum of every blob (model parts included), mask and feature cache.\n"+
			"Prints every problem found; exits 1 when there is any. See docs/RELIABILITY.md.", stderr)
	proj := fs.String("project", "", "project `FILE`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *proj == "" {
		return usagef("--project is required")
	}
	rep, err := storage.CheckFile(ctx, *proj)
	if err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, p)
	}
	if !rep.OK() {
		fmt.Fprintf(stdout, "%s: %d problem(s); `workstation salvage --project %s --out NEW` copies what is readable\n", *proj, len(rep.Problems), *proj)
		return fmt.Errorf("%s: %w", *proj, errDamaged)
	}
	fmt.Fprintf(stdout, "%s: ok (%d blobs, %d masks, %d feature caches verified)\n", *proj, rep.Blobs, rep.Masks, rep.Features)
	return nil
}

func runSalvage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("salvage", "--project P --out Q",
		"Copies everything readable from a damaged project P into a new project Q (which must not\n"+
			"exist): bucket by bucket, key by key, skipping what cannot be read, then dropping blobs and\n"+
			"masks whose checksums fail and models with a missing or damaged part. P is opened read-only\n"+
			"and never changed. Lists what was left behind.", stderr)
	proj := fs.String("project", "", "damaged project `FILE`")
	out := fs.String("out", "", "new project `FILE` to write")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *proj == "" || *out == "" {
		return usagef("--project and --out are required")
	}
	rep, err := storage.Salvage(ctx, *proj, *out)
	if err != nil {
		return err
	}
	for _, d := range rep.Dropped {
		fmt.Fprintln(stdout, "left behind:", d)
	}
	fmt.Fprintf(stdout, "salvaged %d images, %d masks, %d model keys into %s (%d things left behind)\n",
		rep.Copied["images"], rep.Copied["masks"], rep.Copied["models"], *out, len(rep.Dropped))
	return nil
}

func runImages(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("images", "rm --project P PATH|ID...",
		"rm removes images from a project: their records, masks and cached features (the image files\n"+
			"themselves are not touched). Use it for an image that is damaged or gone, which training\n"+
			"would otherwise keep failing on.", stderr)
	proj := fs.String("project", "", "project `FILE`")
	if len(args) == 0 || args[0] != "rm" {
		fs.Usage()
		return usagef("images: the only subcommand is rm")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err.Error()}
	}
	if *proj == "" || fs.NArg() == 0 {
		return usagef("images rm needs --project and at least one image path or id")
	}
	p, err := storage.Open(*proj, storage.Options{})
	if err != nil {
		return err
	}
	defer p.Close()
	for _, arg := range fs.Args() {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, err := findImage(p, arg)
		if err != nil {
			return err
		}
		if err := p.DeleteImage(id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed image %d (%s)\n", id, arg)
	}
	return nil
}

// findImage resolves a path (as given or made absolute) or a numeric id.
func findImage(p *storage.Project, arg string) (uint64, error) {
	if r, err := p.ImageByPath(arg); err == nil {
		return r.ID, nil
	}
	if abs, err := filepath.Abs(arg); err == nil {
		if r, err := p.ImageByPath(abs); err == nil {
			return r.ID, nil
		}
	}
	if id, err := strconv.ParseUint(arg, 10, 64); err == nil {
		if _, err := p.Image(id); err == nil {
			return id, nil
		}
	}
	return 0, fmt.Errorf("project %s has no image %s (give its path as imported, or its id): %w", p.Path(), arg, storage.ErrNotFound)
}
