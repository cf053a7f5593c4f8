package ui

import (
	"errors"
	"fmt"

	"fyne.io/fyne/v2"
)

// Review keys of Results and Inspect (when no text field has the focus):
//
//	↓ or J  next image          ↑ or K  previous image
//	Home / End  first / last image
//	A  accept the model's verdict   R  reject it (the final verdict flips)
//	U or Backspace  undo the decision on the image
//	F  next fail   M  next missed defect   L  next false alarm
//
// Decisions are stored in the project with the run's model version, the
// reviewer's OS user name and the time, and the list moves on to the next
// image.

// typedKey dispatches a key typed on the window to the screen shown.
func (w *Workstation) typedKey(ev *fyne.KeyEvent) {
	switch w.currentScreen() {
	case ScreenResults:
		if w.results.tabs.Selected() == nil || w.results.tabs.SelectedIndex() == 0 {
			w.results.browser.typedKey(ev)
		}
	case ScreenInspect:
		w.inspect.browser.typedKey(ev)
	}
}

// typedKey handles one review key; it reports whether the key was one.
func (b *runBrowser) typedKey(ev *fyne.KeyEvent) bool {
	switch ev.Name {
	case fyne.KeyDown, fyne.KeyJ:
		b.step(1)
	case fyne.KeyUp, fyne.KeyK:
		b.step(-1)
	case fyne.KeyHome:
		b.selectIndex(0)
	case fyne.KeyEnd:
		b.selectIndex(len(b.sorted) - 1)
	case fyne.KeyA:
		b.decide(true)
	case fyne.KeyR:
		b.decide(false)
	case fyne.KeyU, fyne.KeyBackspace:
		b.clearDecision()
	case fyne.KeyF:
		b.jump(filterFails)
	case fyne.KeyM:
		b.jump(filterMisses)
	case fyne.KeyL:
		b.jump(filterFalseAlarms)
	default:
		return false
	}
	return true
}

// selectIndex selects the i-th shown image and scrolls to it.
func (b *runBrowser) selectIndex(i int) {
	if i < 0 || i >= len(b.sorted) {
		return
	}
	b.list.Select(i)
	b.list.ScrollTo(i)
}

// step moves the selection by d images (the first image when none is selected).
func (b *runBrowser) step(d int) {
	if len(b.sorted) == 0 {
		return
	}
	if b.selected < 0 {
		b.selectIndex(0)
		return
	}
	b.selectIndex(max(0, min(len(b.sorted)-1, b.selected+d)))
}

// jump selects the next shown image of a kind (filterFails, filterMisses,
// filterFalseAlarms) after the selected one, wrapping around.
func (b *runBrowser) jump(kind string) {
	n := len(b.sorted)
	for k := 1; k <= n; k++ {
		i := (b.selected + k) % n
		if b.selected < 0 {
			i = k - 1
		}
		if b.matches(b.sorted[i], kind) {
			b.selectIndex(i)
			b.status.SetText(fmt.Sprintf("Image %d of %d: %s", i+1, n, kind))
			return
		}
	}
	b.status.SetText("No " + kind + " among the images shown.")
}

// decide records the reviewer's decision on the selected image and moves on.
func (b *runBrowser) decide(accept bool) {
	if b.selected < 0 || b.selected >= len(b.sorted) {
		b.status.SetText("Select an image to review first (↓ or J).")
		return
	}
	r := b.reviewer()
	if r == nil || b.run.ModelID == "" {
		b.w.showError(errors.New("this project cannot store review decisions"), "open a workstation project file")
		return
	}
	s := b.sorted[b.selected]
	o := Override{Image: OverrideKey(s), ModelVerdict: b.verdict(s), Accepted: accept, Score: s.Score, Threshold: b.th.For(s.Category)}
	if err := r.SetOverride(b.run.ModelID, o); err != nil {
		b.w.showError(fmt.Errorf("save the review of %s: %w", s.Path, err), "check that the project file is writable")
		return
	}
	b.afterDecision(r)
}

// clearDecision removes the decision on the selected image.
func (b *runBrowser) clearDecision() {
	if b.selected < 0 || b.selected >= len(b.sorted) {
		return
	}
	r := b.reviewer()
	if r == nil || b.run.ModelID == "" {
		return
	}
	s := b.sorted[b.selected]
	if err := r.ClearOverride(b.run.ModelID, OverrideKey(s)); err != nil {
		b.w.showError(fmt.Errorf("undo the review of %s: %w", s.Path, err), "check that the project file is writable")
		return
	}
	b.reloadOverrides(r)
	b.list.RefreshItem(b.selected)
	b.showInfo()
}

// reloadOverrides reads the model's decisions back (with who and when as stored).
func (b *runBrowser) reloadOverrides(r Reviewer) {
	o, err := r.Overrides(b.run.ModelID)
	if err != nil {
		b.w.showError(fmt.Errorf("reviews of model %s: %w", b.run.ModelID, err), "run `workstation check` on the project")
		return
	}
	b.overrides = o
	b.updateSummary()
}

// afterDecision shows the stored decision and selects the next image.
func (b *runBrowser) afterDecision(r Reviewer) {
	b.reloadOverrides(r)
	at := b.selected
	switch b.filter.Selected {
	case filterUnreviewed, filterReviewed, filterOverridden:
		// The decided image may leave the list: the next one takes its place.
		b.selected = -1
		b.applyFilter()
		b.selectIndex(min(at, len(b.sorted)-1))
	default:
		b.list.RefreshItem(at)
		b.showInfo()
		if at+1 < len(b.sorted) {
			b.selectIndex(at + 1)
		}
	}
}
