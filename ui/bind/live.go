package bind

import (
	"context"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/folderwatch"
	"github.com/dmad/workstation/core/live"
	"github.com/dmad/workstation/core/publish"
	"github.com/dmad/workstation/ui"
)

// Live implements ui.LiveFunc: the project's active model scores each new
// image of req.Input (as `workstation watch` does) until ctx is cancelled;
// verdicts and bad files go to board, the daily CSVs, overlays and ledger
// to req.Out, and verdicts to req's webhook and MQTT broker when set. The project is held for the whole run (no training meanwhile).
func (e *Engine) Live(ctx context.Context, req ui.LiveRequest, board *live.Board) error {
	p, done, err := jobProject(req.Project)
	if err != nil {
		return err
	}
	defer done()
	is, err := p.s.NewImageScorer(0, banks.SearchFast) // the line wants its verdict quickly
	if err != nil {
		return err
	}
	defer is.Close()
	category := is.DefaultCategory(req.Input)
	// The first image would otherwise make the sessions and bank lists.
	if err := is.Warm(ctx, category); err != nil {
		return err
	}
	outputs := []publish.Output{board}
	if req.Webhook != "" {
		outputs = append(outputs, &publish.Webhook{URL: req.Webhook})
	}
	if req.MQTTBroker != "" {
		mq, err := publish.DialMQTT(publish.MQTTOptions{Broker: req.MQTTBroker, Topic: req.MQTTTopic,
			QoS: req.MQTTQoS, Logger: e.o.Logger})
		if err != nil {
			return err
		}
		outputs = append(outputs, mq)
	}
	overlays := live.NewOverlayWriter(req.Out, 8, e.o.Logger)
	score := is.VerdictScorer(overlays, category, -1)
	_, err = live.Run(ctx, live.Options{Input: req.Input, Out: req.Out,
		Watch:   folderwatch.Options{ForcePolling: req.Poll, Recursive: req.Recursive},
		Outputs: outputs, Board: board, Logger: e.o.Logger}, score)
	if oerr := overlays.Close(); err == nil {
		err = oerr
	}
	return err
}
