package pipeline

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/progress"
)

// seenEntries counts an anomaly bank's seen-anomaly entries.
func seenEntries(ab *banks.AnomalyBank) int {
	n := 0
	for _, k := range ab.Kind {
		if k == banks.KindSeen {
			n++
		}
	}
	return n
}

func TestFitFromStart(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	ctx := context.Background()
	first := f.set
	first.Seen = f.set.Seen[:1]
	prev, err := Fit(ctx, rt, first, smallFit(DMAD, f.enc), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := slices.Clone(prev.Mapper.W1.RawData())

	o := smallFit(DMAD, f.enc)
	o.Start, o.Refit = prev, RefitOptions{Patches: 600, Epochs: 2}
	var stages []progress.Stage
	m, err := Fit(ctx, rt, f.set, o, func(e progress.Event) {
		if len(stages) == 0 || stages[len(stages)-1] != e.Stage {
			stages = append(stages, e.Stage)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Normal != prev.Normal || slices.Contains(stages, progress.Bank) {
		t.Fatalf("the refit rebuilt the normal bank (stages %v)", stages)
	}
	if !slices.Equal(prev.Mapper.W1.RawData(), before) {
		t.Fatal("the refit changed the earlier model's mapper")
	}
	if m.Mapper == prev.Mapper || slices.Equal(m.Mapper.W1.RawData(), before) {
		t.Fatal("the refit did not train the mapper")
	}
	// 600 patches in steps of 256: 2 steps an epoch.
	if m.Meta.RefitSteps != 4 || m.Meta.Epochs != prev.Meta.Epochs {
		t.Fatalf("refit steps %d (want 4), epochs %d (start's %d)", m.Meta.RefitSteps, m.Meta.Epochs, prev.Meta.Epochs)
	}
	if m.Meta.SeenImages != len(f.set.Seen) || seenEntries(m.Anomaly) <= seenEntries(prev.Anomaly) {
		t.Fatalf("seen images %d, seen bank entries %d (before %d): the new annotations are missing",
			m.Meta.SeenImages, seenEntries(m.Anomaly), seenEntries(prev.Anomaly))
	}
	if m.Meta.Threshold == 0 || m.Meta.MapFusion == nil {
		t.Fatalf("threshold %v, map fusion %v", m.Meta.Threshold, m.Meta.MapFusion)
	}
	items := make([]Scored, len(f.test))
	for i, r := range scoreAll(t, rt, m, f.tfeats) {
		s := f.test[i]
		items[i] = Scored{Path: s.Path, Category: s.Category, Anomalous: s.Label == dataset.Defect, MaskPath: s.MaskPath, Result: r}
	}
	h0, w0 := f.enc.Grid()
	_, mean, err := Evaluate(ctx, items, h0, w0, f.enc.Config())
	if err != nil {
		t.Fatal(err)
	}
	if mean.ImageAUROC < 0.75 || mean.PixelAUROC < 0.75 {
		t.Fatalf("refitted model's mean metrics too low: %+v", mean)
	}

	// A refit refits its weak-label rounds too.
	weak := f.set
	weak.Weak = []Image{{ID: 999, Category: f.set.Seen[1].Category, Features: f.set.Seen[1].Features}}
	weak.Seen = f.set.Seen[:1]
	if m, err = Fit(ctx, rt, weak, o, nil); err != nil {
		t.Fatal(err)
	}
	if m.Meta.RefitSteps != 8 || m.Meta.WeakPatches == 0 {
		t.Fatalf("refit with weak images: %d steps (want 8: the fit and its round), %d weak patches", m.Meta.RefitSteps, m.Meta.WeakPatches)
	}

	// The first seen anomalies change the anomaly bank's make-up: the
	// mapper of an unsupervised model is not fine-tuned but trained anew
	// (the normal bank is still reused); the same for weak rounds after a
	// first fit without seen anomalies.
	unsup := f.set
	unsup.Seen = nil
	up, err := Fit(ctx, rt, unsup, smallFit(DMAD, f.enc), nil)
	if err != nil {
		t.Fatal(err)
	}
	o2 := o
	o2.Start = up
	if m, err = Fit(ctx, rt, f.set, o2, nil); err != nil {
		t.Fatal(err)
	}
	if m.Meta.RefitSteps != 0 || m.Normal != up.Normal {
		t.Fatalf("refit of an unsupervised model with seen anomalies: %d fine-tuning steps (want a full training), normal bank reused %v", m.Meta.RefitSteps, m.Normal == up.Normal)
	}
	weakOnly := unsup
	weakOnly.Weak = weak.Weak
	if m, err = Fit(ctx, rt, weakOnly, o2, nil); err != nil {
		t.Fatal(err)
	}
	if m.Meta.RefitSteps != 0 || m.Meta.WeakPatches == 0 {
		t.Fatalf("refit with weak images only: %d fine-tuning steps (want 0: its round trains anew), %d weak patches", m.Meta.RefitSteps, m.Meta.WeakPatches)
	}

	cctx, cancel := context.WithCancel(ctx)
	_, err = Fit(cctx, rt, f.set, o, func(e progress.Event) {
		if e.Stage == progress.Train {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled refit returned %v", err)
	}
}

func TestFitFromStartRejects(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	ctx := context.Background()
	pc, err := Fit(ctx, rt, f.set, smallFit(PatchCore, f.enc), nil)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := Fit(ctx, rt, f.set, smallFit(DMAD, f.enc), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		method Method
		start  *Model
		enc    string
	}{
		{"from a PatchCore model", DMAD, pc, ""},
		{"as PatchCore", PatchCore, prev, ""},
		{"with another backbone", DMAD, prev, "other-backbone"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := smallFit(c.method, f.enc)
			o.Start = c.start
			if c.enc != "" {
				o.EncoderID = c.enc
			}
			if _, err := Fit(ctx, rt, f.set, o, nil); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
