package banks

import (
	"context"
	"math"
	"math/rand"
	"testing"

	"github.com/dmad/workstation/core/mat"
)

func TestBuildNormalBank(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	var imgs []*mat.Matrix
	var ids []int32
	for i := range 10 {
		imgs = append(imgs, gaussian(rng, 30, 12))
		ids = append(ids, int32(100+i))
	}
	b, err := BuildNormalBank(context.Background(), imgs, ids, 0.05, CoresetOptions{Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != 15 || len(b.Source) != 15 {
		t.Fatalf("bank has %d rows, %d sources; want 15", b.Len(), len(b.Source))
	}
	// Every entry is a row of the image its source names.
	for i := range b.Len() {
		img := imgs[b.Source[i]-100]
		found := false
		for r := range img.Rows() {
			if equalRows(img.Row(r), b.Features.Row(i)) {
				found = true
			}
		}
		if !found {
			t.Fatalf("entry %d is not a row of image %d", i, b.Source[i])
		}
	}
	for _, bad := range []struct {
		name  string
		feats *mat.Matrix
		src   []int32
		ratio float64
	}{
		{"short sources", imgs[0], ids, 0.1},
		{"zero ratio", imgs[0], make([]int32, 30), 0},
		{"no features", &mat.Matrix{}, nil, 0.1},
	} {
		if _, err := BuildNormalBankFrom(context.Background(), bad.feats, bad.src, bad.ratio, CoresetOptions{}); err == nil {
			t.Errorf("%s accepted", bad.name)
		}
	}
}

func equalRows(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func scaled(m *mat.Matrix, s float32) *mat.Matrix {
	out := m.Clone()
	for i := range out.RawData() {
		out.RawData()[i] *= s
	}
	return out
}

func TestBuildAnomalyBank(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	normal, ood, seen := gaussian(rng, 400, 16), gaussian(rng, 50, 16), gaussian(rng, 20, 16)
	for i := range seen.RawData() {
		seen.RawData()[i] += 5
	}
	normalSrc := make([]int32, normal.Rows())
	for i := range normalSrc {
		normalSrc[i] = int32(i / 40)
	}
	for _, tc := range []struct {
		name   string
		in     AnomalyInputs
		counts map[uint8]int
	}{
		{"unsupervised", AnomalyInputs{Normal: normal, NormalSource: normalSrc, PseudoCount: 300, OOD: ood},
			map[uint8]int{KindPseudo: 300, KindOOD: 50}},
		{"unsupervised-oversample", AnomalyInputs{Normal: normal, PseudoCount: 900},
			map[uint8]int{KindPseudo: 900}},
		{"semi", AnomalyInputs{Normal: normal, OOD: ood, Seen: seen},
			map[uint8]int{KindOOD: 50, KindSeen: 20, KindCentred: 20}},
		{"semi-with-pseudo", AnomalyInputs{Normal: normal, PseudoCount: 10, OOD: ood, Seen: seen, PseudoInSemi: true},
			map[uint8]int{KindPseudo: 10, KindOOD: 50, KindSeen: 20, KindCentred: 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := BuildAnomalyBank(context.Background(), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Validate(); err != nil {
				t.Fatal(err)
			}
			total := 0
			for k := KindPseudo; k <= KindCentred; k++ {
				if b.Count(k) != tc.counts[k] {
					t.Errorf("%s entries: %d, want %d", KindName(k), b.Count(k), tc.counts[k])
				}
				total += tc.counts[k]
			}
			if b.Len() != total {
				t.Errorf("%d entries, want %d", b.Len(), total)
			}
			for i, k := range b.Kind {
				if (k == KindPseudo && tc.in.NormalSource != nil) != (b.Source[i] != NoSource) {
					t.Fatalf("entry %d (%s) has source %d", i, KindName(k), b.Source[i])
				}
			}
			// Noise scales relative to the normal features: scaling every
			// input scales the bank.
			in := tc.in
			in.Normal, in.OOD = scaled(in.Normal, 100), nil
			if in.Seen != nil {
				in.Seen = scaled(in.Seen, 100)
			}
			if tc.in.OOD != nil {
				in.OOD = scaled(tc.in.OOD, 100)
			}
			b100, err := BuildAnomalyBank(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range b.Features.RawData() {
				if !near(float64(b100.Features.RawData()[i]), 100*float64(v), 1e-3*(1+math.Abs(100*float64(v)))) {
					t.Fatalf("value %d: %v at scale 100 vs %v", i, b100.Features.RawData()[i], v)
				}
			}
		})
	}
}

func TestAnomalyBankNoise(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	normal := gaussian(rng, 3000, 8)
	for r := range normal.Rows() { // dimension d has std d+1
		for d := range 8 {
			normal.Row(r)[d] *= float32(d + 1)
		}
	}
	seen := mat.New(2000, 8) // all seen patches at (1, 1, …): the centre
	for i := range seen.RawData() {
		seen.RawData()[i] = 1
	}
	b, err := BuildAnomalyBank(context.Background(), AnomalyInputs{Normal: normal, Seen: seen, CentredStd: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	var cent []int
	for i, k := range b.Kind {
		if k == KindCentred {
			cent = append(cent, i)
		}
	}
	c := b.Features.Gather(cent)
	std := FeatureStd(c)
	for d := range 8 {
		var mean float64
		for r := range c.Rows() {
			mean += float64(c.Row(r)[d])
		}
		mean /= float64(c.Rows())
		want := 0.2 * float64(d+1)
		if !near(mean, 1, 0.05*float64(d+1)) || !near(float64(std[d]), want, 0.1*want) {
			t.Errorf("dim %d: centred mean %.3f (want 1), std %.3f (want %.3f)", d, mean, std[d], want)
		}
	}
	if _, err := BuildAnomalyBank(context.Background(), AnomalyInputs{}); err == nil {
		t.Error("empty inputs accepted")
	}
	if _, err := BuildAnomalyBank(context.Background(), AnomalyInputs{Normal: normal, OOD: mat.New(3, 5)}); err == nil {
		t.Error("column mismatch accepted")
	}
}
