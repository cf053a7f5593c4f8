package project

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/membudget"
	"github.com/dmad/workstation/core/pipeline"
)

func TestNewTrainOptions(t *testing.T) {
	o, err := NewTrainOptions(Choices{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Fit.CoresetRatio != pipeline.DefaultCoresetRatio || o.OODImages != pipeline.DefaultOODImages || o.Method != pipeline.DMAD {
		t.Errorf("defaults %+v", o)
	}
	if o.Memory != membudget.Default() {
		t.Errorf("memory %s, want the default %s", membudget.Format(o.Memory), membudget.Format(membudget.Default()))
	}
	if m, err := NewTrainOptions(Choices{Memory: 3 << 30}); err != nil || m.Memory != 3<<30 {
		t.Errorf("memory 3GiB: %v, %v", m.Memory, err)
	}
	q, err := NewTrainOptions(Choices{Quick: true, Epochs: 3, BatchSize: 64, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if q.Fit.TrainPatches != QuickTrainPatches || q.OODImages != QuickOODImages || q.Fit.Train.Epochs != 3 ||
		q.Fit.Train.BatchSize != 64 || q.Fit.Seed != 7 || q.Fit.Train.Seed != 7 {
		t.Errorf("quick %+v", q)
	}
	for _, c := range []struct {
		choices Choices
		option  string
	}{
		{Choices{Epochs: -1}, "epochs"},
		{Choices{CoresetRatio: -0.1}, "coreset-ratio"},
		{Choices{CoresetRatio: 1.5}, "coreset-ratio"},
		{Choices{BatchSize: -5}, "batch"},
		{Choices{Hidden: -1}, "hidden"},
		{Choices{TrainPatches: -2}, "train-patches"},
		{Choices{OODImages: -1}, "ood-images"},
		{Choices{Memory: 100 << 20}, "memory"},
		{Choices{Memory: -1}, "memory"},
		{Choices{NoiseStd: -1}, "noise-std"},
		{Choices{LR: -1}, "lr"},
	} {
		_, err := NewTrainOptions(c.choices)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Option != c.option {
			t.Errorf("%+v: error %v, want one naming %s", c.choices, err, c.option)
		}
	}
	for _, c := range []struct {
		err    error
		option string
	}{
		{ValidateEngine(-4, 0), "threads"},
		{ValidateEngine(0, -224), "input-size"},
		{ValidateSeen(-3), "seen-anomalies"},
	} {
		var oe *OptionError
		if !errors.As(c.err, &oe) || oe.Option != c.option {
			t.Errorf("error %v, want one naming %s", c.err, c.option)
		}
	}
	if err := ValidateEngine(4, 224); err != nil {
		t.Error(err)
	}
}

// TestOpenNeverWritesWhatItReads: a missing project is not created without
// Create, an empty file is refused and left as it is.
func TestOpenNeverWritesWhatItReads(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo.db")
	if _, _, err := Open(missing, OpenOptions{ReadOnly: true}, nil, nil); err == nil {
		t.Fatal("opened a missing project")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed open created %s: %v", missing, err)
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, o := range []OpenOptions{{}, {Create: true}, {ReadOnly: true}} {
		_, _, err := Open(empty, o, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("%+v: open of an empty file: %v", o, err)
		}
	}
	if st, err := os.Stat(empty); err != nil || st.Size() != 0 {
		t.Errorf("the empty file was rewritten: %v, %d bytes", err, st.Size())
	}
	s, created, err := Open(filepath.Join(dir, "new.db"), OpenOptions{Create: true}, nil, nil)
	if err != nil || !created {
		t.Fatalf("create: %v, created %v", err, created)
	}
	s.Close()
	s, created, err = Open(filepath.Join(dir, "new.db"), OpenOptions{ReadOnly: true}, nil, nil)
	if err != nil || created {
		t.Fatalf("read-only reopen: %v, created %v", err, created)
	}
	s.Close()
}
