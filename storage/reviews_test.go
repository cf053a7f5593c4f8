package storage

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestReviewsPersistAndDetectDamage(t *testing.T) {
	p := newProject(t)
	path := p.Path()
	ctx := context.Background()
	rec := &ModelRecord{Active: true, Thresholds: map[string]float64{"image": 0.5, "image/bottle": 0.6}}
	if err := p.SaveModel(ctx, rec, map[string]io.Reader{"meta": strings.NewReader("{}")}); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	reviews := []Review{
		{Image: ImageKey(7), ModelVerdict: VerdictFail, Accepted: false, Score: 0.71, Threshold: 0.6, Who: "reviewer-alice", When: when},
		{Image: "/line/batch/3.png", ModelVerdict: VerdictPass, Accepted: true, Score: 0.2, Threshold: 0.5, Who: "bob"},
	}
	for _, r := range reviews {
		if err := p.PutReview(rec.Version, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []Review{{Image: "", ModelVerdict: VerdictPass}, {Image: "x", ModelVerdict: "maybe"}} {
		if err := p.PutReview(rec.Version, bad); err == nil {
			t.Errorf("review %+v accepted", bad)
		}
	}
	if err := p.PutReview(99, reviews[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("review for a missing model: %v", err)
	}
	if err := p.SetModelThresholds(rec.Version, map[string]float64{"image": 0.55, "image/bottle": 0.7}); err != nil {
		t.Fatal(err)
	}
	p.Close()

	// Reopened: everything is there, the thresholds in the same version.
	p, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Reviews(rec.Version)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d reviews after reopen", len(got))
	}
	a := got[ImageKey(7)]
	if a.Who != "reviewer-alice" || !a.When.Equal(when) || a.Accepted || a.FinalVerdict() != VerdictPass {
		t.Errorf("review after reopen: %+v (final %s)", a, a.FinalVerdict())
	}
	if b := got["/line/batch/3.png"]; b.When.IsZero() || b.FinalVerdict() != VerdictPass {
		t.Errorf("second review %+v", b)
	}
	m, err := p.Model(rec.Version)
	if err != nil || m.Thresholds["image/bottle"] != 0.7 || m.Thresholds["image"] != 0.55 || len(m.Parts) != 1 {
		t.Errorf("model record after SetModelThresholds: %+v %v", m, err)
	}
	if ms, _ := p.Models(); len(ms) != 1 {
		t.Errorf("thresholds made %d versions", len(ms))
	}
	if err := p.DeleteReview(rec.Version, "/line/batch/3.png"); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Reviews(rec.Version); len(got) != 1 {
		t.Errorf("%d reviews after delete", len(got))
	}
	p.Close()

	// One flipped byte in a review value: a clear error naming it, from
	// Reviews and from Check; the project still opens (counts unchanged).
	flipAt(t, path, []byte("reviewer-alice"))
	p, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("open with a damaged review: %v", err)
	}
	_, err = p.Reviews(rec.Version)
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "review of id:7 for model 1") {
		t.Errorf("damaged review: %v", err)
	}
	p.Close()
	rep, err := CheckFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(rep.Problems, "\n"), "review checksum mismatch") {
		t.Errorf("check did not report the damaged review: %v", rep.Problems)
	}
}
