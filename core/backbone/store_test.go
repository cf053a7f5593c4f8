package backbone

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/progress"
)

func TestImportListRemove(t *testing.T) {
	s := &Store{Dir: filepath.Join(t.TempDir(), "bb")}
	model := filepath.Join(t.TempDir(), "m.onnx")
	if err := os.WriteFile(model, []byte("not really onnx"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := s.Import(model, []byte(`{"name":"tiny","input":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("not really onnx"))
	if e.SHA256 != hex.EncodeToString(sum[:]) || e.Size != 15 {
		t.Fatalf("entry %+v", e)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Name != "tiny" {
		t.Fatalf("list %v %v", list, err)
	}
	// A card that names another checksum is refused and leaves the store as it was.
	_, err = s.Import(model, []byte(`{"name":"tiny","sha256":"00"}`))
	if err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("want mismatch error, got %v", err)
	}
	if got, _ := s.Get("tiny"); got.SHA256 != e.SHA256 {
		t.Fatal("failed import damaged the stored backbone")
	}
	if err := s.Remove("tiny"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("tiny"); err == nil {
		t.Fatal("removed backbone still found")
	}
}

func TestPull(t *testing.T) {
	body := []byte("weights")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])
	s := &Store{Dir: t.TempDir()}
	for _, c := range []struct {
		name, card, wantErr string
	}{
		{"ok", `{"name":"a","url":"` + srv.URL + `","sha256":"` + good + `"}`, ""},
		{"bad sum", `{"name":"b","url":"` + srv.URL + `","sha256":"` + strings.Repeat("0", 64) + `"}`, "sha256 mismatch"},
		{"no url", `{"name":"c"}`, "no download URL"},
		{"no sum", `{"name":"d","url":"` + srv.URL + `"}`, "no sha256"},
	} {
		var last progress.Event
		_, err := s.Pull(context.Background(), []byte(c.card), func(e progress.Event) { last = e })
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.wantErr)
		}
		if c.wantErr == "" && (last.Stage != progress.Download || last.Done != len(body) || last.Total != len(body)) {
			t.Errorf("%s: last progress %+v, want %s %d/%d", c.name, last, progress.Download, len(body), len(body))
		}
	}
	if _, err := s.Get("b"); err == nil {
		t.Error("a download with the wrong checksum was kept")
	}
}
