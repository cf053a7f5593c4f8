//go:build !nogui

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	backbones "github.com/dmad/workstation/core/backbone"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/ui"
	"github.com/dmad/workstation/ui/bind"
)

// appID is the application ID of FyneApp.toml (preferences and storage
// folders are keyed by it).
const appID = "io.github.dmad.workstation"

// screenshotsEnv names a folder: the application then runs the demo with
// the real engine, saves one PNG per screen there and quits.
const screenshotsEnv = "WORKSTATION_SCREENSHOTS"

func runGUI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gui", "[--project FILE] [flags]",
		"Opens the desktop application. With WORKSTATION_SCREENSHOTS=DIR it runs the demo (synthetic\n"+
			"dataset, import, training, evaluation) with the real engine, saves one PNG per screen into DIR\n"+
			"and quits.", stderr)
	proj := fs.String("project", "", "project `FILE` to open at start")
	backbone := fs.String("backbone", DefaultBackbone, "backbone `NAME` from the store, or an ONNX/card FILE, for new projects")
	device := fs.String("device", "auto", "execution provider: auto, cpu, cuda, directml or webgpu (auto tries cuda, then directml on Windows, then cpu)")
	threads := fs.Int("threads", runtime.NumCPU(), "CPU threads for ONNX Runtime")
	ortLib := fs.String("ort-lib", "", "ONNX Runtime shared library `FILE` (default: $ONNXRUNTIME_LIB, then beside the program, then third_party/onnxruntime)")
	if err := parse(fs, args); err != nil {
		return err
	}
	dev, err := ort.ParseDevice(*device)
	if err != nil {
		return usageError{err.Error()}
	}
	if err := checkDisplay(runtime.GOOS, os.Getenv); err != nil {
		return err
	}
	// The GUI logs at Info so the provider line and job errors show on a
	// terminal; scripts/screenshots.sh too (no DEBUG lines from scripts).
	// Fyne's own diagnostics (standard log) become one record each, its
	// harmless ones at Debug (ui.FyneLog).
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(log)
	stdlog.SetFlags(0)
	stdlog.SetOutput(ui.FyneLog(log))
	shots := os.Getenv(screenshotsEnv)
	rt, err := ort.Open(ort.Options{LibraryPath: *ortLib, Threads: *threads, Device: dev, Logger: log})
	if err != nil {
		if shots == "" {
			showFatal(err) // started from a desktop, nobody reads stderr
		}
		return err
	}
	defer rt.Close()
	eng, err := bind.NewEngine(bind.Options{Runtime: rt, LibraryPath: *ortLib, Threads: *threads,
		Backbone: *backbone, Logger: log})
	if err != nil {
		return err
	}
	defer eng.Close()

	a := app.NewWithID(appID)
	deps := eng.Deps()
	if dir, err := backbones.DataDir(); err == nil {
		deps.DataDir = dir // demo data in the data folder, not Fyne's config folder
	}
	if shots != "" {
		dir, err := os.MkdirTemp("", "workstation-demo-")
		if err != nil {
			return fmt.Errorf("demo data folder: %w", err)
		}
		defer os.RemoveAll(dir)
		deps.DataDir = dir
	}
	ws := ui.New(a, deps)
	if *proj != "" {
		if err := ws.OpenProject(*proj); err != nil {
			dialog.ShowError(err, ws.Window())
		}
	}
	var shotErr error
	if shots != "" {
		go func() {
			defer fyne.Do(a.Quit)
			start := time.Now()
			fyne.DoAndWait(ws.RunDemo)
			ws.Wait()
			if p := ws.Project(); p == nil {
				shotErr = errors.New("the demo opened no project: see the log above")
			} else if runs, err := p.Runs(); err != nil || len(runs) == 0 {
				shotErr = fmt.Errorf("the demo did not finish its evaluation (%v): see the log above", err)
			}
			log.Info("demo finished", "seconds", time.Since(start).Seconds())
			files, err := ws.Screenshots(shots)
			if err != nil {
				shotErr = err
				return
			}
			for _, f := range files {
				fmt.Fprintln(stdout, filepath.Clean(f))
			}
		}()
	}
	go func() {
		<-ctx.Done() // Ctrl+C on the terminal closes the window cleanly
		fyne.Do(a.Quit)
	}()
	ws.ShowAndRun()
	ws.Close()
	return shotErr
}

// showFatal shows a start-up error in a window of its own and waits until
// the user closes it.
func showFatal(err error) {
	a := app.NewWithID(appID)
	w := a.NewWindow("DMAD Inspection Workstation")
	msg := widget.NewLabel("The workstation cannot start:\n\n" + err.Error() +
		"\n\nThe ONNX Runtime library ships beside the program in the download (onnxruntime.dll on Windows, " +
		"libonnxruntime.so.1 on Linux): unpack the whole archive again. In a source tree run 'make setup'. " +
		"Or point --ort-lib / $ONNXRUNTIME_LIB at the library, then start it again.")
	msg.Wrapping = fyne.TextWrapWord
	w.SetContent(container.NewBorder(nil, container.NewCenter(widget.NewButton("Quit", a.Quit)), nil, nil, msg))
	w.Resize(fyne.NewSize(640, 280))
	w.ShowAndRun()
}

// checkDisplay reports, on a system whose windows need an X11 or Wayland
// server, that neither is set: without one the windowing library panics
// with a stack trace instead of saying what is missing.
func checkDisplay(goos string, getenv func(string) string) error {
	switch goos {
	case "windows", "darwin", "android", "ios", "js":
		return nil
	}
	if getenv("DISPLAY") != "" || getenv("WAYLAND_DISPLAY") != "" {
		return nil
	}
	return errors.New("no display to open the window on: DISPLAY and WAYLAND_DISPLAY are unset.\n" +
		"Start the workstation from a desktop session (or over ssh -X, or under xvfb-run), or use the\n" +
		"command line without a window: 'workstation help' lists the commands (train, eval, inspect, watch)")
}
