package train

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/dmad/workstation/core/mapper"
	"github.com/dmad/workstation/core/ort"
)

// BenchmarkTrainStep times one training step (batch gathering, noise, one
// ONNX Runtime run, parameter hand-over) at the workstation's sizes:
// C = 768, H = 1024, 4096 normal patches (+ 4096 pseudo-negatives, + 1024
// seen anomalies in the semi-supervised graph) on $BENCH_THREADS (default
// 2) intra-op threads. Run: go test ./core/train/ -run '^$' -bench TrainStep -benchtime 5x
func BenchmarkTrainStep(b *testing.B) {
	threads := 2
	if v, err := strconv.Atoi(os.Getenv("BENCH_THREADS")); err == nil {
		threads = v
	}
	rt, err := ort.Open(ort.Options{Threads: threads, Device: ort.DeviceAuto})
	if err != nil {
		b.Skipf("ONNX Runtime unavailable: %v", err)
	}
	defer rt.Close()
	const c, h, bn = 768, 1024, 4096
	for _, bc := range []struct {
		name string
		bs   int
	}{{"unsupervised", 0}, {"semi", bn / 4}} {
		b.Run(bc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			cfg := DefaultConfig(c)
			m, err := mapper.Init(cfg.Mapper, 1)
			if err != nil {
				b.Fatal(err)
			}
			data := Data{Normal: randPatches(rng, bn, c, 0.1)}
			if bc.bs > 0 {
				data.Seen = randPatches(rng, 500, c, 0.3)
			}
			m.Std, _ = mapper.FitStandardization(data.Normal.Q, data.Normal.KN, data.Normal.DN)
			g, io := buildStep(m, cfg, bn, bc.bs, false)
			model, err := g.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			sess, err := rt.NewSession(model, io.inputs, io.outputs)
			if err != nil {
				b.Fatal(err)
			}
			defer sess.Close()
			ps := m.Params()
			state := make([][3][]float32, len(ps))
			for i, p := range ps {
				state[i] = [3][]float32{p.Data, make([]float32, len(p.Data)), make([]float32, len(p.Data))}
			}
			bat := newBatcher(data, m.Config, bn, bc.bs, cfg.NoiseStd/m.Std.KScale, rng)
			b.ResetTimer()
			for b.Loop() {
				feed := stepFeed{}
				feed.putParams(ps, state)
				feed.putSchedule(schedule{lr: 1e-4, lrProj: 1e-4, bc1: 0.1, bc2: 0.001})
				bat.shuffle()
				bat.next(0, feed)
				in, err := io.order(feed)
				if err != nil {
					b.Fatal(err)
				}
				res, err := sess.Run(in...)
				if err != nil {
					b.Fatal(err)
				}
				for i := range ps {
					state[i] = [3][]float32{res[io.newParam[i]].F32, res[io.newM[i]].F32, res[io.newV[i]].F32}
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(1/sec, "steps/s")
			b.ReportMetric(float64(2*bn+bc.bs)/sec, "rows/s")
			b.ReportMetric(float64(bn)/sec, "normal_patches/s")
		})
	}
}
