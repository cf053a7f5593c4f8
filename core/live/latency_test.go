package live

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmad/workstation/core/folderwatch"
	"github.com/dmad/workstation/core/publish"
	"github.com/dmad/workstation/core/publish/mqtttest"
	"github.com/dmad/workstation/core/verdict"
)

// BenchmarkCloseToPublished measures live inspection's own latency end to
// end: from closing a 900×900 PNG in the watched folder to its verdict
// arriving at an MQTT subscriber of a real Mosquitto (QoS 1), with the
// daily CSV written (synced) and a webhook served on the way, and a
// trivial scorer in place of the model: add the model's scoring time for
// the full figure. Reported: mean, median and slowest latency in ms.
func BenchmarkCloseToPublished(b *testing.B) {
	for _, settle := range []time.Duration{100 * time.Millisecond, 25 * time.Millisecond} {
		b.Run(fmt.Sprintf("settle=%v", settle), func(b *testing.B) {
			broker := mqtttest.Start(b)
			msgs := broker.Subscribe("bench/#")
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
			defer srv.Close()
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			mq, err := publish.DialMQTT(publish.MQTTOptions{Broker: broker.URL(), ClientID: "bench", QoS: 1, Topic: "bench/{decision}", Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			in, out := b.TempDir(), b.TempDir()
			img := grey(b, 900, 900, 100)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := Run(ctx, Options{Input: in, Out: out, Logger: quiet, Watch: folderwatch.Options{Settle: settle},
					Outputs: []publish.Output{mq, &publish.Webhook{URL: srv.URL}}},
					func(ctx context.Context, path string) (verdict.Verdict, error) {
						return verdict.Verdict{Score: 0.1, Threshold: 0.5, Decision: verdict.Pass}, nil
					})
				done <- err
			}()
			if err := mq.AwaitConnection(ctx); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f, err := os.Create(filepath.Join(in, fmt.Sprintf("img%05d.png", i)))
				if err != nil {
					b.Fatal(err)
				}
				f.Write(img)
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
				closed := time.Now()
				mqtttest.Receive(b, msgs)
				lat = append(lat, time.Since(closed))
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
