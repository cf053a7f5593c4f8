// Package localefix maps the POSIX "C" locale to en_US for this process
// before Fyne's lang package initialises: Fyne parses $LANG at init and logs
// an error for "C" / "C.UTF-8" (common on servers, CI and containers), which
// would clutter every command's output.
//
// It works by initialisation order: the main package imports it, it has no
// dependencies beyond os and strings, and its import path sorts before
// Fyne's locale dependency, so Go initialises it first.
package localefix

import (
	"os"
	"strings"
)

func init() {
	for _, v := range []string{"LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"} {
		val := os.Getenv(v)
		base, _, _ := strings.Cut(val, ".")
		if base == "C" || base == "POSIX" {
			os.Setenv(v, "en_US.UTF-8")
		}
	}
}
