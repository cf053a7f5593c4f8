package ui

import (
	"log"
	"log/slog"
	"strings"
	"testing"
)

func TestFyneLog(t *testing.T) {
	tests := []struct {
		name  string
		lines []string // as fyne.LogError writes them through log.Println
		want  []string // records at Info and above, as "LEVEL msg attrs"
	}{
		{"favourite folders are benign",
			[]string{"Fyne error:  Getting favorite locations", "  Cause: this computer does not define a VIDEOS folder", "  At: /x/dialog/file.go:396"},
			nil},
		{"preferences EOF is benign",
			[]string{"Fyne error:  Preferences load error:", "  Cause: EOF", "  At: /x/app/preferences.go:103"},
			nil},
		{"other preferences errors warn",
			[]string{"Fyne error:  Preferences load error:", "  Cause: invalid character 'x'", "  At: /x/app/preferences.go:103"},
			[]string{`WARN "fyne: Preferences load error" cause="invalid character 'x'" at=/x/app/preferences.go:103`}},
		{"an error without cause, then a plain line",
			[]string{"Fyne error:  Failed to open URL", "  At: /x/app.go:1", "plain words"},
			[]string{`WARN "fyne: Failed to open URL" at=/x/app.go:1`, `INFO "plain words"`}},
		{"an error cut short by the next",
			[]string{"Fyne error:  first", "Fyne error:  Getting favorite locations", "  Cause: no"},
			[]string{`WARN "fyne: first"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf strings.Builder
			h := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				}})
			std := log.New(FyneLog(slog.New(h)), "", 0) // as gui.go sets the standard logger
			for _, l := range tt.lines {
				std.Println(l)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				if l != "" {
					l = strings.Replace(strings.Replace(l, "level=", "", 1), "msg=", "", 1)
					got = append(got, l)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
