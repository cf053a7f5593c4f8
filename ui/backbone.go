package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/widget"
)

// BackboneImporter is implemented by engines that can tell whether the
// backbone of new projects is installed and add one from a file. When the
// engine has it, a missing backbone opens an offer to import one instead of
// an error dialog.
type BackboneImporter interface {
	// CheckBackbone returns nil when the backbone of new projects is usable.
	CheckBackbone() error
	// ImportBackbone adds an ONNX backbone (its card, FILE.json, beside it),
	// makes it the backbone of new projects and returns its name.
	ImportBackbone(path string) (string, error)
	// MissingBackbone reports whether err means a backbone is not installed.
	MissingBackbone(err error) bool
}

// backboneMissing returns the engine's importer when err says a backbone is
// not installed.
func (w *Workstation) backboneMissing(err error) (BackboneImporter, bool) {
	bi, ok := w.deps.Engine.(BackboneImporter)
	if !ok || err == nil || !bi.MissingBackbone(err) {
		return nil, false
	}
	return bi, true
}

// offerBackboneImport explains why no backbone is usable and offers a file
// picker for one; after a successful import it calls then (may be nil).
func (w *Workstation) offerBackboneImport(bi BackboneImporter, reason error, then func()) {
	msg := widget.NewLabel(reason.Error())
	msg.Wrapping = fyne.TextWrapWord
	help := widget.NewLabel("The workstation needs a backbone network (an .onnx file with its .json card beside it). " +
		"Choose the file to import it; it is copied into your data folder once.")
	help.Wrapping = fyne.TextWrapWord
	box := container.NewVBox(help, msg)
	d := dialog.NewCustomConfirm("No backbone installed", "Import backbone…", "Cancel", box, func(ok bool) {
		if ok {
			w.pickBackbone(bi, then)
		}
	}, w.win)
	d.Resize(fyne.NewSize(560, 260))
	d.Show()
}

func (w *Workstation) pickBackbone(bi BackboneImporter, then func()) {
	fd := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil || r == nil {
			return
		}
		path := r.URI().Path()
		r.Close()
		w.background(func(context.Context) {
			name, err := bi.ImportBackbone(path)
			fyne.Do(func() {
				if err != nil {
					w.showError(err, "choose the .onnx file whose card (.json of the same name) is beside it")
					return
				}
				dialog.ShowInformation("Backbone imported", fmt.Sprintf("Backbone %s is installed and used for new projects.", name), w.win)
				if then != nil {
					then()
				}
			})
		})
	}, w.win)
	fd.SetFilter(storage.NewExtensionFileFilter([]string{".onnx"}))
	fd.Resize(fyne.NewSize(800, 560))
	fd.Show()
}

// hintFor is the "what to do" line for an error of a long job: it names
// the cause the error shows, not a guess.
func hintFor(err error, dataDir string) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "free disk space in " + dataDir + " and try again"
	case errors.Is(err, os.ErrPermission):
		return "the workstation cannot write to " + dataDir + ": check the folder's permissions"
	}
	return "the message above names what failed; the terminal log has details"
}
