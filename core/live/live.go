// Package live runs live inspection without a GUI or an engine of its
// own: a folder watcher (core/folderwatch) hands each new image to a
// scorer the caller supplies, every verdict is appended to the day's CSV
// (core/verdict) and fanned out (core/publish) to a webhook, an MQTT broker
// and a Board for the GUI's live view.
package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dmad/workstation/core/folderwatch"
	"github.com/dmad/workstation/core/publish"
	"github.com/dmad/workstation/core/verdict"
)

// LedgerName is the watcher's ledger in the output folder.
const LedgerName = "watch-ledger.jsonl"

// Options configures Run.
type Options struct {
	// Input is the folder watched; Out receives the ledger, the daily CSVs
	// and (through the scorer) overlays.
	Input, Out string
	// Watch tunes the watcher (Settle, PollInterval, ForcePolling, ...);
	// its Dir, Ledger, OnBad and Logger are set by Run.
	Watch folderwatch.Options
	// Outputs receive every verdict through a fan-out (webhook, MQTT, a
	// Board). Run closes them when it returns.
	Outputs []publish.Output
	// FanOut tunes the fan-out's queues.
	FanOut publish.FanOutOptions
	// Board, when set, also gets the bad files (it should be in Outputs
	// too to get the verdicts).
	Board *Board
	// CloseTimeout bounds the delivery of queued verdicts at the end
	// (default 10s).
	CloseTimeout time.Duration
	// Logger receives everything worth knowing; nil: slog.Default().
	Logger *slog.Logger
}

// Result is what a run did.
type Result struct {
	Watch   folderwatch.Stats
	Outputs []publish.OutputStats
}

// Run watches opts.Input until ctx is cancelled, scoring each new image
// with score. It returns nil after a cancellation, or the error that
// stopped it (the CSV could not be written, the ledger failed).
func Run(ctx context.Context, opts Options, score folderwatch.Scorer) (Result, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 10 * time.Second
	}
	if opts.Input == "" || opts.Out == "" {
		return Result{}, errors.New("live: the input and output folders are required")
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return Result{}, fmt.Errorf("live: create %s: %w", opts.Out, err)
	}
	if sameDir(opts.Input, opts.Out) {
		return Result{}, fmt.Errorf("live: the output folder %s is the input folder: overlays would be scored", opts.Out)
	}
	if opts.Watch.Recursive && within(opts.Out, opts.Input) {
		return Result{}, fmt.Errorf("live: the output folder %s is inside the input folder %s, watched with its subfolders: overlays would be scored", opts.Out, opts.Input)
	}
	csvLog, err := verdict.OpenDailyCSV(opts.Out)
	if err != nil {
		return Result{}, err
	}
	defer csvLog.Close()
	fo := publish.NewFanOut(publish.FanOutOptions{Queue: opts.FanOut.Queue, Timeout: opts.FanOut.Timeout,
		Logger: opts.Logger}, opts.Outputs...)
	w := opts.Watch
	w.Dir, w.Ledger, w.Logger = opts.Input, filepath.Join(opts.Out, LedgerName), opts.Logger
	if opts.Board != nil {
		w.OnBad = opts.Board.AddBad
	}
	watcher, err := folderwatch.New(w, score, func(ctx context.Context, v verdict.Verdict) error {
		if err := csvLog.Append(v); err != nil {
			return err
		}
		fo.Publish(v)
		return nil
	})
	if err != nil {
		fo.Close(context.Background())
		return Result{}, err
	}
	runErr := watcher.Run(ctx)
	cctx, cancel := context.WithTimeout(context.Background(), opts.CloseTimeout)
	defer cancel()
	closeErr := fo.Close(cctx)
	res := Result{Watch: watcher.Stats(), Outputs: fo.Stats()}
	if runErr != nil {
		return res, runErr
	}
	if closeErr != nil {
		opts.Logger.Warn("live: outputs closed with errors", "err", closeErr)
	}
	return res, nil
}

// within reports whether folder a lies inside folder b.
func within(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(bb, aa)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func sameDir(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}
