package ui

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/dmad/workstation/core/live"
	"github.com/dmad/workstation/core/publish"
)

// ScreenLive is the live inspection screen.
const ScreenLive = "Live"

// LiveRequest asks for live inspection of a folder with the project's
// active model.
type LiveRequest struct {
	Project Project
	// Input is the folder watched; Out receives the daily verdict CSVs,
	// the overlays of fails and the ledger.
	Input, Out string
	// Poll lists the folder instead of using file-system events (network
	// shares).
	Poll bool
	// Recursive watches the subfolders of Input too.
	Recursive bool
	// Webhook, when set, receives each verdict as a JSON POST.
	Webhook string
	// MQTTBroker, when set, receives each verdict on MQTTTopic at MQTTQoS.
	MQTTBroker, MQTTTopic string
	MQTTQoS               byte
}

// LiveFunc runs live inspection until ctx is cancelled, publishing every
// verdict and bad file to board (Deps.Live).
type LiveFunc func(ctx context.Context, req LiveRequest, board *live.Board) error

// liveView watches a folder and shows live.Board: the latest verdict, the
// yield, the latency, the last fails and the files that could not be read.
type liveView struct {
	w       *Workstation
	content fyne.CanvasObject

	input, out  string
	inputLabel  *widget.Label
	poll        *widget.Check
	recursive   *widget.Check
	webhook     *widget.Entry
	mqttBroker  *widget.Entry
	mqttTopic   *widget.Entry
	mqttQoS     *widget.Select
	startBtn    *widget.Button
	stopBtn     *widget.Button
	status      *widget.Label
	latest      *widget.Label
	latestImg   *canvas.Image
	shown       string // the file latestImg shows (or is loading)
	counts      *widget.Label
	fails, bads *widget.Label
	board       *live.Board
	cancel      context.CancelFunc
	done        chan struct{} // closed when the running LiveFunc has returned
}

func newLiveView(w *Workstation) *liveView {
	v := &liveView{w: w}
	v.inputLabel = widget.NewLabel("No folder chosen.")
	pick := widget.NewButtonWithIcon("Choose folder…", theme.FolderOpenIcon(), func() {
		dialog.ShowFolderOpen(func(u fyne.ListableURI, err error) {
			if err == nil && u != nil {
				v.setInput(u.Path())
			}
		}, w.win)
	})
	v.poll = widget.NewCheck("Poll (network share)", nil)
	v.startBtn = widget.NewButtonWithIcon("Start", theme.MediaPlayIcon(), func() { v.start() })
	v.startBtn.Importance = widget.HighImportance
	v.startBtn.Disable()
	v.stopBtn = widget.NewButtonWithIcon("Stop", theme.MediaStopIcon(), func() { v.stop() })
	v.stopBtn.Disable()
	v.status = widget.NewLabel("")
	v.latest = widget.NewLabel("No verdict yet.")
	v.latest.TextStyle = fyne.TextStyle{Bold: true}
	v.latestImg = canvas.NewImageFromImage(nil)
	v.latestImg.FillMode = canvas.ImageFillContain
	v.latestImg.SetMinSize(fyne.NewSize(280, 280))
	v.counts = widget.NewLabel("")
	v.fails = widget.NewLabel("")
	v.bads = widget.NewLabel("")
	// Paths and verdict lines are cut with an ellipsis rather than widen
	// the window as they change.
	for _, l := range []*widget.Label{v.inputLabel, v.status, v.latest, v.counts} {
		l.Truncation = fyne.TextTruncateEllipsis
	}
	top := container.NewVBox(
		container.NewBorder(nil, nil, container.NewHBox(pick, v.poll, v.startBtn, v.stopBtn), nil, v.inputLabel),
		v.status, v.latest, v.counts)
	lists := container.NewGridWithColumns(3,
		widget.NewCard("Latest image", "", v.latestImg),
		widget.NewCard("Last fails", "", container.NewVScroll(v.fails)),
		widget.NewCard("Unreadable files", "", container.NewVScroll(v.bads)))
	v.content = container.NewBorder(container.NewVBox(top, v.outputsForm()), nil, nil, nil, lists)
	return v
}

// outputsForm holds the watch's options and where verdicts go besides the
// daily CSV and this view, as `workstation watch` has them.
func (v *liveView) outputsForm() fyne.CanvasObject {
	v.recursive = widget.NewCheck("Include subfolders", nil)
	v.webhook = widget.NewEntry()
	v.webhook.SetPlaceHolder("http://mes.local/hooks/dmad (optional)")
	v.mqttBroker = widget.NewEntry()
	v.mqttBroker.SetPlaceHolder("mqtt://broker.local:1883 (optional)")
	v.mqttTopic = widget.NewEntry()
	v.mqttTopic.SetText("dmad/verdicts/{category}")
	v.mqttQoS = widget.NewSelect([]string{"0", "1", "2"}, nil)
	v.mqttQoS.SetSelected("1")
	form := widget.NewForm(
		widget.NewFormItem("", v.recursive),
		&widget.FormItem{Text: "Webhook", Widget: v.webhook, HintText: "each verdict is POSTed as JSON, retried with back-off"},
		&widget.FormItem{Text: "MQTT broker", Widget: v.mqttBroker, HintText: "each verdict is published to the topic"},
		&widget.FormItem{Text: "MQTT topic", Widget: v.mqttTopic, HintText: "{category}, {decision} and {file} are filled in"},
		widget.NewFormItem("MQTT QoS", v.mqttQoS),
	)
	return widget.NewAccordion(widget.NewAccordionItem("Options and plant outputs", form))
}

// request is the LiveRequest the form describes, or an error naming the
// field that is wrong.
func (v *liveView) request() (LiveRequest, error) {
	req := LiveRequest{Project: v.w.project, Input: v.input, Out: v.out, Poll: v.poll.Checked,
		Recursive: v.recursive.Checked, Webhook: strings.TrimSpace(v.webhook.Text),
		MQTTBroker: strings.TrimSpace(v.mqttBroker.Text), MQTTTopic: strings.TrimSpace(v.mqttTopic.Text)}
	if req.Webhook != "" {
		if err := publish.CheckWebhookURL(req.Webhook); err != nil {
			return req, err
		}
	}
	if req.MQTTBroker != "" && req.MQTTTopic == "" {
		return req, errors.New("the MQTT topic must not be empty")
	}
	q, _ := strconv.Atoi(v.mqttQoS.Selected)
	req.MQTTQoS = byte(q)
	return req, nil
}

// setInput chooses the watched folder; verdicts go to a sibling folder
// "<name>-verdicts" (never inside it: overlays would be scored).
func (v *liveView) setInput(dir string) {
	v.input = dir
	v.out = filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-verdicts")
	v.inputLabel.SetText(fmt.Sprintf("Watching %s → %s", dir, v.out))
	if v.cancel == nil {
		v.startBtn.Enable()
	}
}

func (v *liveView) start() {
	if v.input == "" || v.cancel != nil || !v.w.needProject() {
		return
	}
	if v.w.deps.Live == nil {
		v.status.SetText("Live inspection needs the workstation engine.")
		return
	}
	req, err := v.request()
	if err != nil {
		v.status.SetText("Not started: " + err.Error())
		return
	}
	board := live.NewBoard(100, 20)
	board.OnChange(func() { fyne.Do(func() { v.show(board.Snapshot()) }) })
	v.board = board
	ctx, cancel := context.WithCancel(v.w.ctx)
	v.cancel = cancel
	v.startBtn.Disable()
	v.stopBtn.Enable()
	v.status.SetText("Watching for new images…")
	run := v.w.deps.Live
	done := make(chan struct{})
	v.done = done
	v.w.background(func(context.Context) {
		err := run(ctx, req, board)
		close(done)
		fyne.Do(func() {
			cancel()
			v.cancel = nil
			v.stopBtn.Disable()
			v.startBtn.Enable()
			switch {
			case err != nil && !errors.Is(err, context.Canceled):
				v.status.SetText("Stopped: " + err.Error())
				v.w.showError(err, "")
			default:
				v.status.SetText("Stopped.")
			}
		})
	})
}

func (v *liveView) stop() {
	if v.cancel != nil {
		v.cancel()
	}
}

// stopAndWait stops a run and waits until it no longer uses the project
// (at most one image's scoring), before the project is closed.
func (v *liveView) stopAndWait() {
	if v.cancel == nil {
		return
	}
	v.cancel()
	<-v.done
}

// showImage shows the latest scored image: a fail's overlay (its heatmap,
// written just after the verdict is published, so it is waited for up to a
// second), else the image itself (a pass has nothing above the threshold
// to colour). Files are decoded off the UI thread.
func (v *liveView) showImage(path, overlay string) {
	want := path
	if overlay != "" {
		want = overlay
	}
	if want == v.shown {
		return
	}
	v.shown = want
	go func() {
		img, err := decodeFile(want)
		for wait := 0; err != nil && overlay != "" && wait < 20; wait++ {
			time.Sleep(50 * time.Millisecond)
			img, err = decodeFile(want)
		}
		if err != nil && overlay != "" {
			img, err = decodeFile(path)
		}
		if err != nil {
			return // the verdict line says what happened; the last image stays
		}
		fyne.Do(func() {
			if v.shown == want {
				v.latestImg.Image = img
				v.latestImg.Refresh()
			}
		})
	}()
}

// show renders a snapshot of the board.
func (v *liveView) show(s live.Snapshot) {
	if s.Latest != nil {
		l := s.Latest
		v.latest.SetText(fmt.Sprintf("%s  %s  score %.4f (threshold %.4f)  %s",
			strings.ToUpper(l.Decision), filepath.Base(l.Path), l.Score, l.Threshold, l.Latency().Round(time.Millisecond)))
		v.showImage(l.Path, l.Overlay)
	}
	v.counts.SetText(fmt.Sprintf("%d scored, %d fail, %d unreadable · yield %.1f%% over the last %d · latency p50 %s, max %s",
		s.Total, s.Failed, s.Bad, 100*s.Yield, s.Window, s.LatencyP50.Round(time.Millisecond), s.LatencyMax.Round(time.Millisecond)))
	var fails, bads []string
	for _, f := range s.Fails {
		fails = append(fails, fmt.Sprintf("%s  %s  %.4f", f.ScoredAt.Local().Format("15:04:05"), filepath.Base(f.Path), f.Score))
	}
	for _, b := range s.BadFiles {
		bads = append(bads, fmt.Sprintf("%s  %s: %s", b.At.Local().Format("15:04:05"), filepath.Base(b.Path), b.Err))
	}
	v.fails.SetText(strings.Join(fails, "\n"))
	v.bads.SetText(strings.Join(bads, "\n"))
}
