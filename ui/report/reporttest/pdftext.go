// Package reporttest reads back what package report writes, for tests.
package reporttest

import (
	"bytes"
	"compress/zlib"
	"io"
	"regexp"
	"strings"
)

var (
	streamRE = regexp.MustCompile(`(?s)stream\r?\n(.*?)\r?\nendstream`)
	showRE   = regexp.MustCompile(`\(((?:\\.|[^\\)])*)\)\s*Tj`)
)

// PDFText is the text a PDF written by fpdf shows with its core fonts:
// every content stream inflated (fpdf compresses them with zlib), the
// strings of its Tj operators unescaped and joined by newlines. It is no
// general PDF parser: enough to check that a report holds a header or a
// table cell.
func PDFText(pdf []byte) string {
	var out strings.Builder
	for _, m := range streamRE.FindAllSubmatch(pdf, -1) {
		data := m[1]
		if r, err := zlib.NewReader(bytes.NewReader(data)); err == nil {
			if b, err := io.ReadAll(r); err == nil {
				data = b
			}
		}
		for _, s := range showRE.FindAllSubmatch(data, -1) {
			out.WriteString(unescape(string(s[1])))
			out.WriteByte('\n')
		}
	}
	return out.String()
}

func unescape(s string) string {
	r := strings.NewReplacer(`\(`, "(", `\)`, ")", `\\`, `\`)
	return r.Replace(s)
}
