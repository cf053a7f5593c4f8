package banks

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
)

// BenchmarkSearchModes measures, in one run on ORT with 2 threads, one
// image's search (784 queries × 768) against a 15,000-row clustered bank
// (the size of a 2 % coreset of 760k patches):
//   - exact-vs-gemm: a bare MatMul of the search's distance-product shape
//     (784×768 · 768×15,000), the machine's GEMM peak, and the exact
//     Searcher, in GFLOP/s of that product, and their ratio (gemm-ratio);
//   - fast/dims=D/rerank=R: the cascade, with its recall@1 against exact.
//
// Each sub-benchmark reports queries/s and the 1-minute load average
// (the machine may be shared).
// Run: go test -run x -bench SearchModes -benchtime 3x ./core/banks/
func BenchmarkSearchModes(b *testing.B) {
	const bankRows, queries, cols = 15000, 784, 768
	all := benchFeatures(bankRows+queries, cols, true)
	bank, q := all.Slice(0, bankRows), all.Slice(bankRows, bankRows+queries)
	rt := openRuntimeThreads(b, 2)
	ctx := context.Background()
	flop := 2 * float64(queries) * float64(bankRows) * float64(cols)
	exact, err := NewSearcher(rt, bank, SearchOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer exact.Close()
	_, want, err := exact.Search(ctx, q, 1)
	if err != nil {
		b.Fatal(err)
	}
	// GEMM and exact search alternate, and each keeps its fastest run: on
	// a shared machine the least-disturbed runs are the fairest peak and
	// the fairest comparison with it.
	b.Run("exact-vs-gemm", func(b *testing.B) {
		sess := gemmSession(b, rt, bank)
		defer sess.Close()
		in := ort.F32Tensor(q.RawData(), queries, cols)
		if _, err := sess.Run(in); err != nil {
			b.Fatal(err)
		}
		bestGemm, bestExact := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			if _, err := sess.Run(in); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if _, _, err := exact.Search(ctx, q, 1); err != nil {
				b.Fatal(err)
			}
			bestGemm, bestExact = min(bestGemm, t1.Sub(t0)), min(bestExact, time.Since(t1))
		}
		gemm, rate := flop/bestGemm.Seconds(), flop/bestExact.Seconds()
		b.ReportMetric(gemm/1e9, "gemm-GFLOP/s")
		b.ReportMetric(rate/1e9, "exact-GFLOP/s")
		b.ReportMetric(rate/gemm, "gemm-ratio")
		b.ReportMetric(queries/bestExact.Seconds(), "exact-queries/s")
		b.ReportMetric(loadAverage(), "load1")
	})
	for _, f := range []FastOptions{
		{Dims: 64, Rerank: 32, rerankInGraph: true}, {Dims: 64, Rerank: 32},
		{Dims: 32, Rerank: 32}, {Dims: 64, Rerank: 16}, {Dims: 128, Rerank: 32},
	} {
		b.Run(fmt.Sprintf("fast/dims=%d/rerank=%d/in-graph=%v", f.Dims, f.Rerank, f.rerankInGraph), func(b *testing.B) {
			t0 := time.Now()
			s, err := NewCascadeSearcher(rt, bank, SearchOptions{Fast: f})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			_, got, err := s.Search(ctx, q, 1)
			if err != nil {
				b.Fatal(err)
			}
			setup := time.Since(t0)
			b.ResetTimer()
			for range b.N {
				if _, _, err := s.Search(ctx, q, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*queries)/b.Elapsed().Seconds(), "queries/s")
			b.ReportMetric(recallAt1(got, want), "recall@1")
			b.ReportMetric(setup.Seconds(), "setup-s")
			b.ReportMetric(loadAverage(), "load1")
		})
	}
}

// gemmSession is newGEMMSession failing tb on error.
func gemmSession(tb testing.TB, rt *ort.Runtime, bank *mat.Matrix) *ort.Session {
	tb.Helper()
	sess, err := newGEMMSession(rt, bank)
	if err != nil {
		tb.Fatal(err)
	}
	return sess
}

func recallAt1(got, want []int64) float64 {
	hits := 0
	for i := range want {
		if got[i] == want[i] {
			hits++
		}
	}
	return float64(hits) / float64(len(want))
}

// loadAverage is the 1-minute load average from uptime (0 when unknown).
func loadAverage() float64 {
	out, err := exec.Command("uptime").Output()
	if err != nil {
		return 0
	}
	s := string(out)
	i := strings.Index(s, "load average:")
	if i < 0 {
		return 0
	}
	var l float64
	fmt.Sscanf(strings.TrimSpace(s[i+len("load average:"):]), "%f", &l)
	return l
}

// BenchmarkPrincipalAxes times the fast searcher's set-up estimate of a
// 15,000-row bank's top 64 principal axes (4,096 sampled rows): a scorer
// makes one per bank and per category's part of each bank.
// Run: go test -run '^$' -bench PrincipalAxes -benchtime 5x ./core/banks/
func BenchmarkPrincipalAxes(b *testing.B) {
	bank := benchFeatures(15000, 768, true)
	rt := openRuntimeThreads(b, 2)
	for b.Loop() {
		if _, err := principalAxes(rt, bank, 64, 4096, 1); err != nil {
			b.Fatal(err)
		}
	}
}
