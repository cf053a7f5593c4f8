//go:build nogui

package main

import (
	"bytes"
	"strings"
	"testing"
)

// The headless build answers the gui command (and no command at all) with
// a clear error instead of a missing-OpenGL crash.
func TestNoGUIBuild(t *testing.T) {
	for _, args := range [][]string{nil, {"gui"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitError || !strings.Contains(errb.String(), "without the desktop application") {
			t.Errorf("run(%q) = %d, stderr %q", args, code, errb.String())
		}
	}
}
