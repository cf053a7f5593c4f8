package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/shard"
	"github.com/dmad/workstation/ui/report"
)

// parseShardFlag reads inspect's --shard I/N; "" means no sharding (nil).
func parseShardFlag(v string) (*shard.Spec, error) {
	if v == "" {
		return nil, nil
	}
	sp, err := shard.Parse(v)
	if err != nil {
		return nil, usagef("--shard: %v", err)
	}
	return &sp, nil
}

// selectShard keeps the samples of shard sp, hashed by their path relative
// to the input folder so every worker computes the same split.
func selectShard(input string, samples []dataset.Sample, sp shard.Spec) ([]dataset.Sample, error) {
	mine, err := shard.Filter(input, samples, func(s dataset.Sample) string { return s.Path }, sp)
	if err != nil {
		return nil, err
	}
	if len(mine) == 0 {
		return nil, fmt.Errorf("shard %s of %s holds no images (%d in all): use fewer shards", sp, input, len(samples))
	}
	return mine, nil
}

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, "Usage: workstation report merge --out DIR SHARD_DIR...\n\n"+
			"Subcommands:\n  merge   combine the outputs of 'workstation inspect --shard I/N' into one report")
		if len(args) == 0 {
			return usagef("a subcommand is required")
		}
		return errHelp
	}
	switch args[0] {
	case "merge":
		return runReportMerge(ctx, args[1:], stdout, stderr)
	}
	return usagef("unknown subcommand %q (want merge)", args[0])
}

func runReportMerge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report merge", "--out DIR SHARD_DIR...",
		"Combines the output folders of 'workstation inspect --shard I/N' (one per shard, all N of them)\n"+
			"into the output an unsharded run writes: scores.csv with the same rows in the same order,\n"+
			"overlays renamed to that order, summary.json with the same header, counts, per-category and\n"+
			"per-defect-type tables and image metrics recomputed from the rows, pixel metrics from the\n"+
			"shards' anomaly maps (maps.bin, written when every image is labelled), and report.html,\n"+
			"report.pdf and the curves written from them.\n\n"+
			"Example:\n  workstation report merge --out /out/merged /out/shard-0 /out/shard-1 /out/shard-2 /out/shard-3", stderr)
	out := fs.String("out", "", "merged output `DIR` (created)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err.Error()}
	}
	dirs := fs.Args()
	if *out == "" {
		return usagef("--out is required")
	}
	if len(dirs) == 0 {
		return usagef("at least one shard output folder is required")
	}
	merged, err := shard.Merge(ctx, *out, dirs)
	if err != nil {
		return err
	}
	r, err := report.FromOutput(merged.Summary, merged.Rows)
	if err != nil {
		return err
	}
	if err := report.WriteDocuments(*out, r); err != nil {
		return err
	}
	sum := merged.Summary
	fmt.Fprintf(stdout, "merged %d shard outputs: %d images: %d fail, %d pass at %s; report in %s\n",
		len(dirs), sum.Images, sum.Fail, sum.Pass, thresholdText(sum), *out)
	return nil
}
