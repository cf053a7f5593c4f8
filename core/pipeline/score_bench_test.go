package pipeline

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/mapper"
	"github.com/dmad/workstation/core/mat"
)

// BenchmarkScoreDMAD scores 16 images of 784 patches (MobileNetV2 at 224)
// with a DMAD model whose banks have the benchmark's sizes (a 15,209-entry
// normal bank, a 25,000-entry anomaly bank, 768 dimensions; synthetic
// clustered features) in each search mode, and reports the scoring time per
// image split into its parts: the two banks' searches and the mapper
// (scoring from the neighbours' bank rows, mapper.BankScorer). Encoding is
// not included (workstation bench measures scoring end to end).
func BenchmarkScoreDMAD(b *testing.B) {
	const c, perImage, images = 768, 784, 16
	rng := rand.New(rand.NewSource(3))
	feats := func(rows int) *mat.Matrix {
		centres := mat.New(64, c)
		for i := range centres.RawData() {
			centres.RawData()[i] = float32(rng.NormFloat64())
		}
		m := mat.New(rows, c)
		for r := range rows {
			cen := centres.Row(rng.Intn(64))
			for j, v := range cen {
				m.Row(r)[j] = v + 0.3*float32(rng.NormFloat64())
			}
		}
		return m
	}
	src := func(n int) []int32 {
		s := make([]int32, n)
		for i := range s {
			s[i] = int32(i / perImage)
		}
		return s
	}
	normal := &banks.NormalBank{Features: feats(15209), Source: src(15209)}
	anomaly := &banks.AnomalyBank{Features: feats(25000), Source: src(25000), Kind: make([]uint8, 25000)}
	mm, err := mapper.Init(mapper.DefaultConfig(c), 1)
	if err != nil {
		b.Fatal(err)
	}
	q := feats(perImage * images)
	rt := runtimeFor(b)
	ctx := context.Background()
	for _, mode := range []banks.SearchMode{banks.SearchExact, banks.SearchFast} {
		b.Run(fmt.Sprintf("search=%v", mode), func(b *testing.B) {
			kn, err := banks.NewKnowledge(rt, normal, anomaly, banks.KnowledgeOptions{Search: banks.SearchOptions{Mode: mode}})
			if err != nil {
				b.Fatal(err)
			}
			defer kn.Close()
			ms, err := mapper.NewBankScorer(rt, mm, normal.Features, anomaly.Features, false)
			if err != nil {
				b.Fatal(err)
			}
			defer ms.Close()
			var tn, ta, tm time.Duration
			for b.Loop() {
				t0 := time.Now()
				dn, in, err := kn.Normal.Search(ctx, q, 1)
				t1 := time.Now()
				da, ia, err2 := kn.Anomaly.Search(ctx, q, 1)
				t2 := time.Now()
				if err != nil || err2 != nil {
					b.Fatal(err, err2)
				}
				nb := &banks.Neighbours{Normal: banks.Nearest{K: 1, Dist: dn, Idx: in}, Anomaly: banks.Nearest{K: 1, Dist: da, Idx: ia}}
				if _, _, err := partsFrom(ctx, kn, ms, q, nb); err != nil {
					b.Fatal(err)
				}
				tn, ta, tm = tn+t1.Sub(t0), ta+t2.Sub(t1), tm+time.Since(t2)
			}
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N*images) }
			b.ReportMetric(per(tn), "normal-ms/img")
			b.ReportMetric(per(ta), "anomaly-ms/img")
			b.ReportMetric(per(tm), "mapper-ms/img")
			b.ReportMetric(per(tn+ta+tm), "ms/img")
		})
	}
}
