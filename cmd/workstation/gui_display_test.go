//go:build !nogui

package main

import (
	"strings"
	"testing"
)

// TestCheckDisplay: without an X11 or Wayland display (on systems that
// need one) the GUI says so instead of panicking in the windowing library.
func TestCheckDisplay(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	for _, tc := range []struct {
		goos    string
		vars    map[string]string
		wantErr bool
	}{
		{"linux", nil, true},
		{"linux", map[string]string{"DISPLAY": ":0"}, false},
		{"linux", map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, false},
		{"freebsd", nil, true},
		{"windows", nil, false},
		{"darwin", nil, false},
	} {
		err := checkDisplay(tc.goos, env(tc.vars))
		if (err != nil) != tc.wantErr {
			t.Errorf("%s %v: error %v, want error %v", tc.goos, tc.vars, err, tc.wantErr)
		}
		if err != nil && (!strings.Contains(err.Error(), "DISPLAY") || !strings.Contains(err.Error(), "workstation help")) {
			t.Errorf("error does not say what is missing and what to do: %v", err)
		}
	}
}
