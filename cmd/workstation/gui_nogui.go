//go:build nogui

package main

import (
	"context"
	"errors"
	"io"
)

// runGUI of the headless build (-tags nogui: no Fyne, no cgo OpenGL), as
// used in the container image: the command line only.
func runGUI(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("this workstation was built without the desktop application (-tags nogui); use its commands, see workstation help")
}
