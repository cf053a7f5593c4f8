package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dmad/workstation/core/mat"
)

// streamed returns imgs with their features behind Load (copies, so a
// streamed fit cannot lean on the originals), counting the loads.
func streamed(imgs []Image, loads *atomic.Int64) []Image {
	out := make([]Image, len(imgs))
	for i, im := range imgs {
		f := im.Features.Clone()
		im.Features, im.Patches = nil, f.Rows()
		im.Load = func() (*mat.Matrix, error) { loads.Add(1); return f.Clone(), nil }
		out[i] = im
	}
	return out
}

func TestFitStreamedMatchesInMemory(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	ctx := context.Background()
	for _, method := range []Method{PatchCore, DMAD} {
		t.Run(string(method), func(t *testing.T) {
			want, err := Fit(ctx, rt, f.set, smallFit(method, f.enc), nil)
			if err != nil {
				t.Fatal(err)
			}
			var loads atomic.Int64
			set := f.set
			set.Normal, set.Seen = streamed(f.set.Normal, &loads), streamed(f.set.Seen, &loads)
			got, err := Fit(ctx, rt, set, smallFit(method, f.enc), nil)
			if err != nil {
				t.Fatal(err)
			}
			if loads.Load() < int64(len(set.Normal)) {
				t.Fatalf("%d loads for %d normal images: features were not streamed", loads.Load(), len(set.Normal))
			}
			if !slices.Equal(got.Normal.Features.RawData(), want.Normal.Features.RawData()) || !slices.Equal(got.Normal.Source, want.Normal.Source) {
				t.Fatal("streamed normal bank differs from the in-memory one")
			}
			if got.Meta.Threshold != want.Meta.Threshold {
				t.Fatalf("threshold %v streamed, %v in memory", got.Meta.Threshold, want.Meta.Threshold)
			}
			if method == DMAD && !slices.Equal(got.Anomaly.Features.RawData(), want.Anomaly.Features.RawData()) {
				t.Fatal("streamed anomaly bank differs from the in-memory one")
			}
		})
	}
}

func TestFitStreamedLoadError(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	var loads atomic.Int64
	set := f.set
	set.Seen = nil
	set.Normal = streamed(f.set.Normal, &loads)
	set.Normal[3].Load = func() (*mat.Matrix, error) { return nil, errors.New("cache file truncated") }
	_, err := Fit(context.Background(), rt, set, smallFit(PatchCore, f.enc), nil)
	if err == nil || !strings.Contains(err.Error(), "cache file truncated") || !strings.Contains(err.Error(), "image 3") {
		t.Fatalf("error %v, want the load error naming image 3", err)
	}
	set.Normal = streamed(f.set.Normal, &loads)
	set.Normal[2].Patches++ // the cache holds fewer patches than the grid
	if _, err := Fit(context.Background(), rt, set, smallFit(PatchCore, f.enc), nil); err == nil || !strings.Contains(err.Error(), "image 2") {
		t.Fatalf("error %v, want a patch count error naming image 2", err)
	}
}
