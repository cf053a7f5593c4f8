// Command demo runs the workstation's views on the ui/uitest test doubles
// (a toy engine and an in-memory project), for trying the GUI and taking
// screenshots before the real engine is wired in cmd/workstation.
//
// With WORKSTATION_SCREENSHOTS=DIR it runs the demo (synthetic dataset,
// import, training, evaluation), saves one PNG per screen into DIR and quits.
package main

import (
	"log/slog"
	"os"
	"path/filepath"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"github.com/dmad/workstation/ui"
	"github.com/dmad/workstation/ui/uitest"
)

func main() {
	a := app.NewWithID("io.github.dmad.workstation.demo")
	projects := map[string]*uitest.Project{}
	dataDir, err := os.MkdirTemp("", "workstation-demo-")
	if err != nil {
		slog.Error("demo data folder", "err", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dataDir)
	deps := ui.Deps{
		Engine: &uitest.Engine{},
		CreateProject: func(path, name string) (ui.Project, error) {
			p := uitest.NewProject(path, name)
			projects[path] = p
			return p, nil
		},
		OpenProject: func(path string) (ui.Project, error) {
			if p, ok := projects[path]; ok {
				return p, nil
			}
			return nil, os.ErrNotExist
		},
		DataDir: dataDir,
	}
	ws := ui.New(a, deps)
	if dir := os.Getenv("WORKSTATION_SCREENSHOTS"); dir != "" {
		go func() {
			code := 0
			defer func() { fyne.Do(a.Quit); _ = code }()
			fyne.DoAndWait(ws.RunDemo)
			ws.Wait()
			files, err := ws.Screenshots(dir)
			if err != nil {
				slog.Error("screenshots", "err", err)
				return
			}
			for _, f := range files {
				slog.Info("screenshot", "file", filepath.Clean(f))
			}
		}()
	}
	ws.ShowAndRun()
}
