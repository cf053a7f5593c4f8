package ui

import (
	"testing"
	"time"
)

// A run's line names its date once, also for runs stored when names
// carried the date themselves.
func TestRunOption(t *testing.T) {
	at := time.Date(2026, 11, 30, 15, 4, 0, 0, time.UTC)
	for _, tc := range []struct{ name, want string }{
		{"evaluation of model v3", "2. evaluation of model v3 — 2026-11-30 15:04 (12 images)"},
		{"evaluation 2026-11-30 15:04", "2. evaluation — 2026-11-30 15:04 (12 images)"},
		{"batch photos", "2. batch photos — 2026-11-30 15:04 (12 images)"},
	} {
		if got := runOption(1, Run{Name: tc.name, Created: at, Images: make([]ScoredImage, 12)}); got != tc.want {
			t.Errorf("runOption(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}
