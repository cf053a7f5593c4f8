// Package sharedtest locates the project's shared data and models
// (../shared beside the repository root) for tests, skipping a test with a
// message when they are absent, as every test that uses them must.
package sharedtest

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns ../shared/<parts...> relative to the repository root (the
// folder holding go.mod above the working directory), or skips t when that
// path does not exist.
func Dir(t testing.TB, parts ...string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(append([]string{d, "..", "shared"}, parts...)...)
			if _, err := os.Stat(p); err != nil {
				t.Skipf("shared data absent (%s): skipping", p)
			}
			return p
		}
		if filepath.Dir(d) == d {
			t.Skip("repository root (go.mod) not found: skipping the shared-data test")
			return ""
		}
	}
}
