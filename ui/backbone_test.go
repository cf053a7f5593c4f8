package ui_test

import (
	"errors"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"

	"github.com/dmad/workstation/ui"
	"github.com/dmad/workstation/ui/uitest"
)

var errNoBackbone = errors.New("backbone not installed: mobilenet_v2_imagenet (looked in /opt/ws/models and /home/u/.local/share/dmad-workstation/backbones)")

// missingBackbone is the fake engine with no backbone installed.
type missingBackbone struct {
	*uitest.Engine
}

func (missingBackbone) CheckBackbone() error { return errNoBackbone }
func (missingBackbone) ImportBackbone(path string) (string, error) {
	return "", errors.New("not used by these tests")
}
func (missingBackbone) MissingBackbone(err error) bool { return errors.Is(err, errNoBackbone) }

// TestDemoWithoutBackboneOffersImport: Demo on a machine without a backbone
// explains why and offers Import backbone… instead of starting and failing.
func TestDemoWithoutBackboneOffersImport(t *testing.T) {
	a := env(t)
	created := 0
	ws := ui.New(a, ui.Deps{
		Engine: missingBackbone{&uitest.Engine{}},
		CreateProject: func(path, name string) (ui.Project, error) {
			created++
			return uitest.NewProject(path, name), nil
		},
		DataDir: t.TempDir(),
	})
	t.Cleanup(ws.Close)
	ws.RunDemo()
	ws.Wait()
	top := ws.Window().Canvas().Overlays().Top()
	if top == nil {
		t.Fatal("Demo without a backbone showed nothing")
	}
	markup := test.RenderObjectToMarkup(top)
	for _, want := range []string{"No backbone installed", "Import backbone…", "mobilenet_v2_imagenet", "looked in"} {
		if !strings.Contains(markup, want) {
			t.Errorf("dialog lacks %q:\n%s", want, markup)
		}
	}
	if strings.Contains(markup, "free disk space") {
		t.Errorf("dialog gives an unrelated hint:\n%s", markup)
	}
	if created != 0 {
		t.Errorf("the demo created %d project(s) before a backbone was there", created)
	}
}
