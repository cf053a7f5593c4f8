// Package workstation holds what the whole product shares about itself: its
// name and version, read from FyneApp.toml (the file `fyne package` reads),
// so that the CLI, the GUI, report footers and bundle names agree.
package workstation

import (
	_ "embed"
	"fmt"

	"github.com/BurntSushi/toml"
)

//go:embed FyneApp.toml
var fyneApp []byte

// App is the [Details] section of FyneApp.toml.
type App struct {
	Name    string
	ID      string
	Version string
	Build   int
	Icon    string
}

// Metadata parses the embedded FyneApp.toml.
func Metadata() (App, error) {
	var f struct{ Details App }
	if err := toml.Unmarshal(fyneApp, &f); err != nil {
		return App{}, fmt.Errorf("FyneApp.toml: %w", err)
	}
	if f.Details.Version == "" {
		return App{}, fmt.Errorf("FyneApp.toml: [Details] has no Version")
	}
	return f.Details, nil
}

// Version is the product version, e.g. "0.1.0" ("unknown" if FyneApp.toml
// cannot be parsed, which the tests rule out).
func Version() string {
	a, err := Metadata()
	if err != nil {
		return "unknown"
	}
	return a.Version
}

// NameVersion is the product name and version, e.g. "DMAD Workstation 0.1.0",
// for report footers and window titles.
func NameVersion() string {
	a, err := Metadata()
	if err != nil {
		return "DMAD Workstation (unknown version)"
	}
	return a.Name + " " + a.Version
}
