package folderwatch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmad/workstation/core/verdict"
)

// BenchmarkCloseToVerdict measures the watcher's own latency: from the
// moment a 900×900 PNG is closed in the watched folder to the moment its
// verdict reaches the sink, with a trivial scorer (no model) and the daily
// CSV appended (synced) in the sink. The ledger write (synced) follows the
// sink and is not part of the latency. Run with -benchtime=Nx; reported:
// mean, median and slowest latency in ms.
func BenchmarkCloseToVerdict(b *testing.B) {
	for _, bc := range []struct {
		name    string
		settle  time.Duration
		polling bool
		poll    time.Duration
	}{
		{"fsnotify/settle=100ms", 100 * time.Millisecond, false, 0},
		{"fsnotify/settle=25ms", 25 * time.Millisecond, false, 0},
		{"polling/settle=100ms/poll=50ms", 100 * time.Millisecond, true, 50 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in, out := b.TempDir(), b.TempDir()
			img := pngBytes(b, 900, 900, 120)
			csvLog, err := verdict.OpenDailyCSV(out)
			if err != nil {
				b.Fatal(err)
			}
			defer csvLog.Close()
			got := make(chan time.Time, 1)
			w, err := New(Options{Dir: in, Ledger: filepath.Join(out, "ledger.jsonl"), Settle: bc.settle,
				ForcePolling: bc.polling, PollInterval: bc.poll},
				func(ctx context.Context, path string) (verdict.Verdict, error) {
					return verdict.Verdict{Score: 0.1, Threshold: 0.5, Decision: verdict.Pass}, nil
				},
				func(ctx context.Context, v verdict.Verdict) error {
					err := csvLog.Append(v)
					got <- time.Now()
					return err
				})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			for w.Stats().Mode == "" {
				time.Sleep(time.Millisecond)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f, err := os.Create(filepath.Join(in, fmt.Sprintf("img%05d.png", i)))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.Write(img); err != nil {
					b.Fatal(err)
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
				closed := time.Now()
				select {
				case at := <-got:
					lat = append(lat, at.Sub(closed))
				case <-time.After(10 * time.Second):
					b.Fatalf("no verdict 10s after closing file %d", i)
				}
			}
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			st := verdict.Latencies(lat)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(st.Mean), "mean-ms")
			b.ReportMetric(ms(st.P50), "p50-ms")
			b.ReportMetric(ms(st.Max), "max-ms")
		})
	}
}
