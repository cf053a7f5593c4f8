package bind

import (
	"context"
	"log/slog"
	"time"

	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/ui"
)

// stage places one engine stage on the overall progress bar: it starts at
// from and covers width. The views show the stage's progress.Stage.Label.
type stage struct {
	from, width float64
}

// trainStages are Session.Train's stages, weighted roughly by the time each
// took in the demo on a busy 2-core CPU (MobileNetV2 at 224 px: features
// 2 s, bank 8 s, knowledge 3 s, 5 epochs 37 s, threshold 12 s), with more
// weight on features for real images (large files to decode).
var trainStages = map[progress.Stage]stage{
	progress.Features:    {0, 0.20},
	progress.Synthetic:   {0.20, 0.08},
	progress.Bank:        {0.28, 0.12},
	progress.AnomalyBank: {0.40, 0.02},
	progress.Knowledge:   {0.42, 0.05},
	progress.Train:       {0.47, 0.43},
	progress.Threshold:   {0.90, 0.09},
	progress.Save:        {0.99, 0.01},
}

// scoreStages are the stages of Evaluate and Inspect.
var scoreStages = map[progress.Stage]stage{
	progress.Features: {0, 0.85},
	progress.Score:    {0.85, 0.15},
}

// tracker turns pipeline events into ui.Progress with an overall fraction
// and ETA, at most every 100 ms (and at every stage change and stage end).
type tracker struct {
	stages map[progress.Stage]stage
	out    func(ui.Progress)
	log    *slog.Logger
	start  time.Time
	last   time.Time
	stage  progress.Stage
	// stageStart is when the current stage began (for the log).
	stageStart time.Time
	frac       float64
	// loss is the latest training loss; epoch, epochs and refit those of
	// the latest training event (a refit's short fine-tune has its own).
	loss          float64
	epoch, epochs int
	refit         bool
}

func newTracker(stages map[progress.Stage]stage, out func(ui.Progress), log *slog.Logger) *tracker {
	if out == nil {
		out = func(ui.Progress) {}
	}
	now := time.Now()
	return &tracker{stages: stages, out: out, log: log, start: now, stageStart: now}
}

// end logs the duration of the last stage; call it when the job is done.
func (t *tracker) end() {
	if t.stage != "" {
		t.log.Debug("engine stage", "stage", t.stage, "seconds", time.Since(t.stageStart).Seconds())
	}
	t.log.Debug("engine job", "seconds", time.Since(t.start).Seconds())
}

func (t *tracker) event(e progress.Event) {
	st, ok := t.stages[e.Stage]
	if !ok {
		st = stage{from: t.frac}
	}
	f := st.from
	if e.Total > 0 {
		f += st.width * min(1, float64(e.Done)/float64(e.Total))
	}
	// Stages may repeat (knowledge for normal, then seen patches): never go back.
	t.frac = max(t.frac, f)
	if e.Stage == progress.Train {
		t.loss, t.epoch, t.epochs, t.refit = e.Loss, e.Epoch, e.Epochs, e.Refit
	}
	now := time.Now()
	changed := e.Stage != t.stage
	if !changed && e.Done != e.Total && now.Sub(t.last) < 100*time.Millisecond {
		return
	}
	if changed {
		if t.stage != "" {
			t.log.Debug("engine stage", "stage", t.stage, "seconds", now.Sub(t.stageStart).Seconds())
		}
		t.stageStart = now
	}
	t.stage, t.last = e.Stage, now
	p := ui.Progress{Stage: e.Stage.Label(), Step: e.Done, Steps: e.Total, Fraction: t.frac}
	if e.Stage == progress.Train {
		p.Epoch, p.Epochs, p.Loss, p.Refit = e.Epoch, e.Epochs, e.Loss, e.Refit
	}
	if el := now.Sub(t.start); t.frac > 0.03 && el > time.Second {
		p.ETA = time.Duration(float64(el) * (1 - t.frac) / t.frac)
	}
	t.out(p)
}

// warnOnly returns log without its Info and Debug records. The training
// loop logs one Info line per epoch for the CLI; in the desktop application
// the progress bar and the loss plot show the same, and the epochs are kept
// in the model's training log, so the terminal stays quiet.
func warnOnly(log *slog.Logger) *slog.Logger {
	return slog.New(levelFloor{log.Handler(), slog.LevelWarn})
}

// levelFloor passes records at or above min to h.
type levelFloor struct {
	h   slog.Handler
	min slog.Level
}

func (f levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}

func (f levelFloor) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }

func (f levelFloor) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFloor{f.h.WithAttrs(as), f.min}
}

func (f levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{f.h.WithGroup(name), f.min}
}
