package ui

import (
	"context"
	"errors"
	"fmt"
	"image"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/dmad/workstation/core/membudget"
	"github.com/dmad/workstation/ui/internal/plots"
)

const (
	regimeUnsup = "Unsupervised (normal images only)"
	regimeSemi  = "Semi-supervised (uses annotated seen anomalies)"
)

// trainView sets up and runs training.
type trainView struct {
	w       *Workstation
	content fyne.CanvasObject

	regime   *widget.RadioGroup
	seenInfo *widget.Label
	device   *widget.Select
	devInfo  *widget.Label
	epochs   *widget.Entry
	size     *widget.Select
	coreset  *widget.Entry
	memory   *widget.Entry
	scratch  *widget.Check

	start, cancelBtn *widget.Button
	stage, epoch     *widget.Label
	eta, result      *widget.Label
	bar              *widget.ProgressBar
	lossImg          *canvas.Image

	cancel   context.CancelFunc
	losses   []float64
	lastPlot time.Time
	running  bool
	// lastModel is the last model this view trained (for Evaluate).
	lastModel *ModelInfo
	evaluate  *widget.Button
}

func newTrainView(w *Workstation) *trainView {
	v := &trainView{w: w}
	v.regime = widget.NewRadioGroup([]string{regimeUnsup, regimeSemi}, nil)
	v.regime.Required = true
	v.seenInfo = widget.NewLabel("")
	v.seenInfo.Wrapping = fyne.TextWrapWord
	v.device = widget.NewSelect([]string{string(DeviceAuto), string(DeviceCPU), string(DeviceGPU)}, nil)
	v.devInfo = widget.NewLabel("")
	v.devInfo.Wrapping = fyne.TextWrapWord
	v.epochs = widget.NewEntry()
	v.epochs.Validator = positiveInt
	v.size = widget.NewSelect([]string{"224", "256", "320", "384"}, nil)
	v.coreset = widget.NewEntry()
	v.coreset.Validator = func(s string) error {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || f <= 0 || f > 1 {
			return errors.New("a ratio in (0, 1], e.g. 0.05")
		}
		return nil
	}
	v.memory = widget.NewEntry()
	defaultMemory := membudget.Format(membudget.Default())
	v.memory.SetPlaceHolder("default: " + defaultMemory)
	v.memory.Validator = func(s string) error {
		if strings.TrimSpace(s) == "" {
			return nil
		}
		b, err := membudget.Parse(s)
		if err == nil {
			err = membudget.Check(b)
		}
		return err
	}
	// Each setting says in one line what it changes (Fyne has no tooltips).
	item := func(name string, o fyne.CanvasObject, hint string) *widget.FormItem {
		it := widget.NewFormItem(name, o)
		it.HintText = hint
		return it
	}
	v.scratch = widget.NewCheck("Train from scratch", nil)
	form := widget.NewForm(
		item("Regime", container.NewVBox(v.regime, v.seenInfo),
			"Semi-supervised also learns from defects marked seen on Annotate."),
		item("Device", container.NewVBox(v.device, v.devInfo),
			"Where the network runs; auto uses a GPU when one works."),
		item("Epochs", v.epochs,
			"Training passes; the loss plot shows when more stop helping."),
		item("Input size", v.size,
			"Pixels per side: larger finds smaller defects, runs slower."),
		item("Coreset ratio", v.coreset,
			"Share of normal patches remembered (0.1 = 10%); larger is slower."),
		item("Memory", v.memory,
			"Most RAM training may use, e.g. 2GiB; empty: an eighth of this machine's ("+defaultMemory+")."),
		item("Retraining", v.scratch,
			"Off: refit the last model with the new annotations (fast); on: rebuild all."),
	)
	v.start = widget.NewButtonWithIcon("Train", theme.MediaPlayIcon(), v.startTraining)
	v.start.Importance = widget.HighImportance
	v.cancelBtn = widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), func() {
		if v.cancel != nil {
			v.cancel()
		}
	})
	v.cancelBtn.Disable()
	v.evaluate = widget.NewButtonWithIcon("Evaluate on the test split", theme.SearchIcon(), func() {
		if v.lastModel != nil {
			w.ShowScreen(ScreenResults)
			w.results.evaluate(*v.lastModel)
		}
	})
	v.evaluate.Disable()
	v.stage = widget.NewLabel("Stage: idle")
	v.epoch = widget.NewLabel("Epoch: —")
	v.eta = widget.NewLabel("ETA: —")
	// Progress text changes many times a second: truncate it rather than
	// let a longer stage name widen the window.
	for _, l := range []*widget.Label{v.stage, v.epoch, v.eta} {
		l.Truncation = fyne.TextTruncateEllipsis
	}
	v.result = widget.NewLabel("")
	v.result.Wrapping = fyne.TextWrapWord
	v.bar = widget.NewProgressBar()
	v.lossImg = canvas.NewImageFromImage(nil)
	v.lossImg.FillMode = canvas.ImageFillContain
	v.lossImg.SetMinSize(fyne.NewSize(420, 280))
	progress := widget.NewCard("Progress", "", container.NewBorder(
		container.NewVBox(v.stage, container.NewGridWithColumns(2, v.epoch, v.eta), v.bar), v.result, nil, nil, v.lossImg))
	settings := widget.NewCard("Settings", "", container.NewVBox(form, container.NewHBox(v.start, v.cancelBtn, v.evaluate)))
	split := container.NewHSplit(container.NewVScroll(settings), progress)
	split.Offset = 0.45
	v.content = split
	return v
}

// cancelRun cancels a running training (no model is saved).
func (v *trainView) cancelRun() {
	if v.cancel != nil && v.running {
		v.cancel()
	}
}

func positiveInt(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n <= 0 {
		return errors.New("a whole number above 0")
	}
	return nil
}

// reload shows the project's settings and the device the engine detected.
func (v *trainView) reload() {
	p := v.w.project
	if p == nil || v.running {
		return
	}
	s, err := p.Settings()
	if err != nil {
		v.w.showError(fmt.Errorf("read settings: %w", err), "the defaults are shown; save them by training")
		s = DefaultSettings()
	}
	if s.Regime == Unsupervised {
		v.regime.SetSelected(regimeUnsup)
	} else {
		v.regime.SetSelected(regimeSemi)
	}
	v.device.SetSelected(string(s.Device))
	v.epochs.SetText(strconv.Itoa(s.Epochs))
	v.size.SetSelected(strconv.Itoa(s.InputSize))
	v.coreset.SetText(strconv.FormatFloat(s.CoresetRatio, 'g', -1, 64))
	v.memory.SetText("")
	if s.Memory > 0 {
		v.memory.SetText(membudget.Format(s.Memory))
	}
	seen, masks := 0, 0
	if imgs, err := p.Images(); err == nil {
		for _, r := range imgs {
			if r.SeenAnomaly {
				seen++
			}
			if r.HasMask {
				masks++
			}
		}
	}
	v.seenInfo.SetText(fmt.Sprintf("%d annotated defects marked as seen anomalies (%d images have masks)", seen, masks))
	if v.w.deps.Engine != nil {
		d := v.w.deps.Engine.Detect()
		txt := "Found: " + d.Description
		if !d.GPU {
			txt += " — no GPU provider; auto uses the CPU"
		}
		v.devInfo.SetText(txt)
	}
}

// settings reads the form.
func (v *trainView) settings() (Settings, error) {
	s := DefaultSettings()
	if p := v.w.project; p != nil {
		if old, err := p.Settings(); err == nil {
			s.Threshold = old.Threshold
		}
	}
	s.Regime = SemiSupervised
	if v.regime.Selected == regimeUnsup {
		s.Regime = Unsupervised
	}
	s.Device = Device(v.device.Selected)
	if err := v.epochs.Validate(); err != nil {
		return s, fmt.Errorf("epochs %q: %w", v.epochs.Text, err)
	}
	s.Epochs, _ = strconv.Atoi(strings.TrimSpace(v.epochs.Text))
	s.InputSize, _ = strconv.Atoi(v.size.Selected)
	if err := v.coreset.Validate(); err != nil {
		return s, fmt.Errorf("coreset ratio %q: %w", v.coreset.Text, err)
	}
	s.CoresetRatio, _ = strconv.ParseFloat(strings.TrimSpace(v.coreset.Text), 64)
	if err := v.memory.Validate(); err != nil {
		return s, fmt.Errorf("memory %q: %w", v.memory.Text, err)
	}
	s.Memory = 0
	if t := strings.TrimSpace(v.memory.Text); t != "" {
		s.Memory, _ = membudget.Parse(t)
	}
	return s, nil
}

func (v *trainView) startTraining() {
	if !v.w.needProject() || v.running {
		return
	}
	s, err := v.settings()
	if err != nil {
		v.w.showError(err, "correct the setting and press Train again")
		return
	}
	p := v.w.project
	if err := p.SaveSettings(s); err != nil {
		v.w.showError(fmt.Errorf("save settings: %w", err), "check that the project file is writable")
		return
	}
	ctx, cancel := context.WithCancel(v.w.ctx)
	v.cancel, v.running, v.losses = cancel, true, nil
	v.start.Disable()
	v.cancelBtn.Enable()
	v.evaluate.Disable()
	v.result.SetText("")
	v.stage.SetText("Stage: starting")
	v.bar.SetValue(0)
	v.lossImg.Image = nil
	v.lossImg.Refresh()
	req := TrainRequest{Project: p, Regime: s.Regime, Device: s.Device, Epochs: s.Epochs, InputSize: s.InputSize,
		CoresetRatio: s.CoresetRatio, Memory: s.Memory, FromScratch: v.scratch.Checked}
	started := time.Now()
	v.w.background(func(context.Context) {
		defer cancel()
		m, err := v.w.deps.Engine.Train(ctx, req, v.observe) // Train stores the model
		fyne.Do(func() {
			v.running = false
			v.start.Enable()
			v.cancelBtn.Disable()
			switch {
			case errors.Is(err, context.Canceled):
				v.stage.SetText("Stage: cancelled")
				v.result.SetText("Training was cancelled; no model was saved.")
			case err != nil:
				v.stage.SetText("Stage: failed")
				v.w.showError(fmt.Errorf("training: %w", err), "check the images and settings (fewer epochs or a smaller input size need less memory), then train again")
			default:
				v.lastModel = &m
				v.evaluate.Enable()
				v.w.header.refresh()
				v.stage.SetText("Stage: done")
				v.bar.SetValue(1)
				v.result.SetText(fmt.Sprintf("Model v%d saved: %s, %d categories, %d seen anomalies, final loss %.4g, %s.",
					m.Version, m.Regime, len(m.Categories), m.SeenAnomalies, m.FinalLoss, time.Since(started).Round(time.Second)))
			}
		})
	})
}

// observe shows one progress event; it may be called from any goroutine.
func (v *trainView) observe(pr Progress) {
	fyne.Do(func() {
		v.stage.SetText("Stage: " + pr.Stage)
		if pr.Epochs > 0 {
			if pr.Refit {
				// A refit's short fine-tune of the last model (kept
				// short: the label shares its row with the ETA).
				v.epoch.SetText(fmt.Sprintf("Fine-tune epoch: %d / %d", pr.Epoch, pr.Epochs))
			} else {
				v.epoch.SetText(fmt.Sprintf("Epoch: %d / %d", pr.Epoch, pr.Epochs))
			}
		} else if pr.Steps > 0 {
			v.epoch.SetText(fmt.Sprintf("Step: %d / %d", pr.Step, pr.Steps))
		}
		v.eta.SetText("ETA: " + formatETA(pr.ETA))
		v.bar.SetValue(pr.Fraction)
		if pr.Loss != 0 && pr.Epoch > 0 {
			// One point per epoch: the latest loss reported in that epoch.
			for len(v.losses) < pr.Epoch {
				v.losses = append(v.losses, pr.Loss)
			}
			v.losses[pr.Epoch-1] = pr.Loss
			if time.Since(v.lastPlot) > 250*time.Millisecond || pr.Epoch == pr.Epochs {
				v.lastPlot = time.Now()
				v.plotLoss()
			}
		}
	})
}

func (v *trainView) plotLoss() {
	img, err := plots.Loss(v.losses, 420, 280)
	if err != nil {
		img = image.NewRGBA(image.Rect(0, 0, 1, 1))
	}
	v.lossImg.Image = img
	v.lossImg.Refresh()
}
