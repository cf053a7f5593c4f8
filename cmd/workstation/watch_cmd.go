package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/folderwatch"
	"github.com/dmad/workstation/core/live"
	"github.com/dmad/workstation/core/project"
	"github.com/dmad/workstation/core/publish"
	"github.com/dmad/workstation/core/verdict"
)

// watchFlags are watch's own flags.
type watchFlags struct {
	project, input, out, category string
	version                       int
	threshold                     float64
	settle, pollInterval          time.Duration
	poll, recursive               bool
	webhook                       string
	mqttBroker, mqttTopic         string
	mqttQoS                       int
	search                        *string
}

func (w *watchFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&w.project, "project", "", "project `FILE` (opened read-only)")
	fs.StringVar(&w.input, "input", "", "`DIR` watched for new images (its top level; with --recursive its subfolders too)")
	fs.BoolVar(&w.recursive, "recursive", false, "watch the subfolders of --input too, also ones created later (e.g. a camera's dated folders); --out must lie outside --input")
	fs.StringVar(&w.out, "out", "", "output `DIR`: daily verdict CSVs, overlays of fails, the ledger of scored files")
	fs.StringVar(&w.category, "category", "", "category `NAME` of the images (default: the model's only category, or the input folder's name when it is one)")
	fs.IntVar(&w.version, "version", 0, "model `VERSION` (0: the active one)")
	fs.IntVar(&w.version, "model", 0, "same as --version")
	fs.Float64Var(&w.threshold, "threshold", -1, "decision threshold on the image score (default: the model's, per category when it has one)")
	fs.DurationVar(&w.settle, "settle", 100*time.Millisecond, "how long a file's size and time must stay unchanged before it is scored (use seconds on network shares)")
	fs.BoolVar(&w.poll, "poll", false, "list the folder every --poll-interval instead of using file-system events (network shares)")
	fs.DurationVar(&w.pollInterval, "poll-interval", time.Second, "folder listing interval when polling")
	fs.StringVar(&w.webhook, "webhook", "", "POST each verdict as JSON to `URL` (retried with back-off)")
	fs.StringVar(&w.mqttBroker, "mqtt-broker", "", "publish each verdict to the MQTT broker at `URL` (mqtt://host:1883 or tls://host:8883)")
	fs.StringVar(&w.mqttTopic, "mqtt-topic", "dmad/verdicts/{category}", "MQTT topic `TEMPLATE`: {category}, {decision} and {file} are filled in")
	fs.IntVar(&w.mqttQoS, "mqtt-qos", 1, "MQTT QoS: 0, 1 or 2")
}

func (w *watchFlags) validate() error {
	switch {
	case w.project == "":
		return usagef("--project is required")
	case w.input == "" || w.out == "":
		return usagef("--input and --out are required")
	case w.settle <= 0 || w.pollInterval <= 0:
		return usagef("--settle and --poll-interval must be positive")
	case w.mqttQoS < 0 || w.mqttQoS > 2:
		return usagef("--mqtt-qos %d: want 0, 1 or 2", w.mqttQoS)
	case w.mqttBroker != "" && w.mqttTopic == "":
		return usagef("--mqtt-topic must not be empty")
	}
	if w.webhook != "" {
		if err := publish.CheckWebhookURL(w.webhook); err != nil {
			return usagef("--%v", err)
		}
	}
	return nil
}

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("watch", "--project P.dmadproj --input DIR --out DIR [flags]",
		"Live inspection: scores each new image that appears in --input (once it is completely written)\n"+
			"with the project's model and writes its verdict (score, pass/fail at the category's threshold)\n"+
			"to --out/verdicts-YYYY-MM-DD.csv, a heatmap overlay for each fail under --out/overlays/, and to\n"+
			"the optional webhook and MQTT broker. Unreadable files are logged, counted and skipped. A\n"+
			"ledger in --out remembers what was scored, so a restart neither scores a file twice nor skips\n"+
			"one that arrived while it was stopped. The project is opened read-only. Ctrl-C stops it.\n\n"+
			"Example:\n  workstation watch --project line3.dmadproj --input /mnt/camera --out /var/lib/dmad/line3 \\\n"+
			"    --webhook http://mes.local/hooks/dmad --mqtt-broker mqtt://broker.local:1883 \\\n"+
			"    --mqtt-topic 'plant1/line3/{category}/{decision}'", stderr,
		"project", "input", "out", "category", "webhook", "mqtt-broker", "mqtt-topic")
	var ef engineFlags
	var wf watchFlags
	ef.register(fs)
	wf.register(fs)
	// The line needs its verdict within a second: fast search by default.
	wf.search = searchFlag(fs, banks.SearchFast)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := wf.validate(); err != nil {
		return err
	}
	mode, err := parseSearch(*wf.search)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if ef.quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	s, done, err := openSession(&ef, wf.project, project.OpenOptions{ReadOnly: true})
	if err != nil {
		return err
	}

	defer done(&err)
	is, err := s.NewImageScorer(wf.version, mode)
	if err != nil {
		return err
	}
	defer is.Close()
	category, err := watchCategory(wf.category, wf.input, is)
	if err != nil {
		return err
	}
	// The first image would otherwise make the sessions and bank lists.
	t := time.Now()
	if err := is.Warm(ctx, category); err != nil {
		return err
	}
	log.Info("model ready", "s", time.Since(t).Seconds())

	board := live.NewBoard(1000, 1) // the run's latency statistics
	outputs := []publish.Output{board}
	if wf.webhook != "" {
		outputs = append(outputs, &publish.Webhook{URL: wf.webhook})
	}
	if wf.mqttBroker != "" {
		mq, err := publish.DialMQTT(publish.MQTTOptions{Broker: wf.mqttBroker, Topic: wf.mqttTopic,
			QoS: byte(wf.mqttQoS), Logger: log})
		if err != nil {
			return usageError{err.Error()}
		}
		outputs = append(outputs, mq)
	}
	if !ef.quiet {
		outputs = append(outputs, &verdictPrinter{w: stdout})
	}
	overlays := live.NewOverlayWriter(wf.out, 8, log)
	score := is.VerdictScorer(overlays, category, wf.threshold)
	log.Info("watching", "input", wf.input, "out", wf.out, "model", is.Version(), "category", category,
		"threshold", is.Threshold(category))
	res, err := live.Run(ctx, live.Options{
		Input: wf.input, Out: wf.out,
		Watch:   folderwatch.Options{Settle: wf.settle, PollInterval: wf.pollInterval, ForcePolling: wf.poll, Recursive: wf.recursive},
		Outputs: outputs, Board: board, Logger: log,
	}, score)
	if oerr := overlays.Close(); err == nil {
		err = oerr
	}
	snap := board.Snapshot()
	fmt.Fprintf(stdout, "watch %s: %d scored (%d fail), %d unreadable, %d scoring errors, %d already done; latency file closed → verdict p50 %s, max %s\n",
		res.Watch.Mode, res.Watch.Scored, snap.Failed, res.Watch.Bad, res.Watch.Failed, res.Watch.Skipped,
		snap.LatencyP50.Round(time.Millisecond), snap.LatencyMax.Round(time.Millisecond))
	for _, o := range res.Outputs {
		if o.Failed > 0 || o.Dropped > 0 {
			fmt.Fprintf(stderr, "%s: %d delivered, %d failed, %d dropped\n", o.Name, o.Sent, o.Failed, o.Dropped)
		}
	}
	if err != nil {
		return err
	}
	return ctx.Err() // nil only if live.Run stopped by itself
}

// watchCategory is --category, checked against the model's categories,
// or the scorer's default for the input folder.
func watchCategory(flagValue, input string, is *project.ImageScorer) (string, error) {
	if flagValue == "" {
		return is.DefaultCategory(input), nil
	}
	if cats := is.Model().Meta.Categories; len(cats) > 0 && !slices.Contains(cats, flagValue) {
		return "", usagef("--category %q: the model knows %v", flagValue, cats)
	}
	return flagValue, nil
}

// verdictPrinter writes one line per verdict (a publish.Output).
type verdictPrinter struct{ w io.Writer }

func (p *verdictPrinter) Name() string                { return "stdout" }
func (p *verdictPrinter) Close(context.Context) error { return nil }
func (p *verdictPrinter) Publish(_ context.Context, v verdict.Verdict) error {
	_, err := fmt.Fprintf(p.w, "%s  %-4s %.4f (threshold %.4f) %s  %s\n", v.ScoredAt.Format("15:04:05.000"),
		v.Decision, v.Score, v.Threshold, filepath.Base(v.Path), v.Latency().Round(time.Millisecond))
	return err
}
