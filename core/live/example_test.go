package live_test

import (
	"context"
	"log"
	"time"

	"github.com/dmad/workstation/core/folderwatch"
	"github.com/dmad/workstation/core/live"
	"github.com/dmad/workstation/core/publish"
	"github.com/dmad/workstation/core/verdict"
)

// How `workstation watch` wires live inspection: the scorer wraps the
// project's model (fast mode where it exists); outputs are optional.
func ExampleRun() {
	ctx, stop := context.WithTimeout(context.Background(), time.Second) // the CLI uses its signal context
	defer stop()
	out := "/var/lib/dmad/live-out"
	score := func(ctx context.Context, path string) (verdict.Verdict, error) {
		// s, thr := model.ScoreFile(ctx, path)                // the engine
		s, thr, cat := 0.12, 0.5, "bottle"
		v := verdict.Verdict{Path: path, Category: cat, Score: s, Threshold: thr, Decision: verdict.Decide(s, thr)}
		// if v.Decision == verdict.Fail { live.SaveOverlay(out, &v, img, heat, w, h, 1.5) }
		return v, nil
	}
	mq, err := publish.DialMQTT(publish.MQTTOptions{Broker: "mqtt://broker.local:1883", Topic: "plant1/line3/{category}/{decision}", QoS: 1})
	if err != nil {
		log.Fatal(err)
	}
	board := live.NewBoard(200, 20) // the GUI's live view reads board.Snapshot() on board.OnChange
	res, err := live.Run(ctx, live.Options{
		Input: "/mnt/camera", Out: out,
		Watch:   folderwatch.Options{Settle: 100 * time.Millisecond, ForcePolling: false},
		Outputs: []publish.Output{&publish.Webhook{URL: "https://mes.local/hooks/dmad"}, mq, board},
		Board:   board,
	}, score)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("%d scored, %d bad, %d failed", res.Watch.Scored, res.Watch.Bad, res.Watch.Failed)
}
