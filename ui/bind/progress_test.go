package bind

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/storage"
	"github.com/dmad/workstation/ui"
)

func TestTrackerFractionsAndStages(t *testing.T) {
	var got []ui.Progress
	tr := newTracker(trainStages, func(p ui.Progress) { got = append(got, p) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	events := []progress.Event{
		{Stage: progress.Features, Done: 0, Total: 10},
		{Stage: progress.Features, Done: 10, Total: 10},
		{Stage: progress.Synthetic, Done: 5, Total: 5},
		{Stage: progress.Bank},
		{Stage: progress.Bank, Done: 3, Total: 3},
		{Stage: progress.Knowledge, Done: 8, Total: 8},
		{Stage: progress.Knowledge, Done: 2, Total: 8}, // seen patches after normal ones
		{Stage: progress.Train, Done: 1, Total: 4, Epoch: 1, Epochs: 2, Loss: 0.9},
		{Stage: progress.Train, Done: 4, Total: 4, Epoch: 2, Epochs: 2, Loss: 0.4},
		{Stage: progress.Threshold, Done: 2, Total: 2},
		{Stage: progress.Save},
	}
	for _, e := range events {
		tr.event(e)
	}
	tr.end()
	// Stage changes and stage ends always report; the first features event
	// and the repeated knowledge stage are throttled or clamped.
	wantStages := []string{"reading the images", "reading the images", "making example defects",
		"building the normal memory", "building the normal memory", "comparing with both memories",
		"training the scorer", "training the scorer", "choosing the pass/fail threshold", "saving the model"}
	if len(got) != len(wantStages) {
		t.Fatalf("%d progress reports, want %d: %+v", len(got), len(wantStages), got)
	}
	prev := -1.0
	for i, p := range got {
		if p.Stage != wantStages[i] {
			t.Errorf("report %d stage %q, want %q", i, p.Stage, wantStages[i])
		}
		if p.Fraction < prev || p.Fraction < 0 || p.Fraction > 1 {
			t.Errorf("report %d fraction %.3f after %.3f", i, p.Fraction, prev)
		}
		prev = p.Fraction
	}
	if tr.loss != 0.4 {
		t.Errorf("final loss %v", tr.loss)
	}
	last := got[7]
	if last.Epoch != 2 || last.Epochs != 2 || last.Loss != 0.4 || last.Step != 4 || last.Steps != 4 {
		t.Errorf("training report %+v", last)
	}
	if got[2].Epochs != 0 || got[2].Loss != 0 {
		t.Errorf("non-training report carries training fields: %+v", got[2])
	}
	if f := got[len(got)-2].Fraction; f < 0.98 {
		t.Errorf("fraction after the threshold stage %.3f", f)
	}
}

// TestTrackerKnowsEveryStage: every stage the engine's jobs report has a
// place on the overall bar (a stage renamed or added in core/progress
// without a weight here would freeze the bar).
func TestTrackerKnowsEveryStage(t *testing.T) {
	for _, c := range []struct {
		stages []progress.Stage
		places map[progress.Stage]stage
	}{{progress.TrainStages, trainStages}, {progress.ScoreStages, scoreStages}} {
		for _, s := range c.stages {
			if _, ok := c.places[s]; !ok {
				t.Errorf("stage %q has no place on the progress bar", s)
			}
		}
	}
}

// TestTrackerUnknownStage: a stage no job lists (a check outside the
// engine's jobs, or one added later) shows under its own name and holds the
// overall fraction where it was, neither jumping ahead nor going back.
func TestTrackerUnknownStage(t *testing.T) {
	var got []ui.Progress
	tr := newTracker(scoreStages, func(p ui.Progress) { got = append(got, p) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, e := range []progress.Event{
		{Stage: progress.Features, Done: 4, Total: 4},
		{Stage: progress.CheckImages, Done: 1, Total: 2},
		{Stage: progress.CheckImages, Done: 2, Total: 2},
		{Stage: progress.Score, Done: 2, Total: 2},
	} {
		tr.event(e)
	}
	if len(got) != 4 {
		t.Fatalf("%d progress reports, want 4: %+v", len(got), got)
	}
	for _, i := range []int{1, 2} {
		if got[i].Stage != progress.CheckImages.Label() || got[i].Fraction != got[0].Fraction || got[i].Step != i || got[i].Steps != 2 {
			t.Errorf("report %d %+v, want stage %q at fraction %.3f, step %d/2", i, got[i], progress.CheckImages.Label(), got[0].Fraction, i)
		}
	}
	if got[3].Fraction != 1 {
		t.Errorf("fraction after scoring %.3f, want 1", got[3].Fraction)
	}
}

// TestLabelsAgree: the views' label names are the project's, both ways.
func TestLabelsAgree(t *testing.T) {
	for _, c := range []struct {
		ui    ui.Label
		store int
	}{{ui.LabelGood, storage.LabelNormal}, {ui.LabelDefect, storage.LabelAnomalous}, {ui.LabelUnknown, storage.LabelUnknown}} {
		if got := uiLabel(c.store); got != c.ui {
			t.Errorf("uiLabel(%d) = %q, want %q", c.store, got, c.ui)
		}
		if got := storageLabel(c.ui); got != c.store {
			t.Errorf("storageLabel(%q) = %d, want %d", c.ui, got, c.store)
		}
	}
}

func TestWarnOnly(t *testing.T) {
	var buf strings.Builder
	log := warnOnly(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log.Info("mapper training", "epoch", 1)
	log.Debug("engine stage")
	log.With("job", "train").Warn("reset threshold")
	log.Error("train failed")
	got := buf.String()
	if strings.Contains(got, "mapper training") || strings.Contains(got, "engine stage") {
		t.Errorf("Info or Debug passed:\n%s", got)
	}
	if !strings.Contains(got, "reset threshold") || !strings.Contains(got, "job=train") || !strings.Contains(got, "train failed") {
		t.Errorf("Warn or Error lost:\n%s", got)
	}
}
