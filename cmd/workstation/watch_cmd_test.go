package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dmad/workstation/core/live"
	"github.com/dmad/workstation/core/publish/mqtttest"
	"github.com/dmad/workstation/core/verdict"
)

// watchProcess is a running `workstation watch`.
type watchProcess struct {
	cmd      *exec.Cmd
	out, err bytes.Buffer
}

func startWatch(t *testing.T, env []string, args ...string) *watchProcess {
	t.Helper()
	p := &watchProcess{cmd: exec.Command(binary, append([]string{"watch"}, args...)...)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	return p
}

// stop interrupts the watcher as Ctrl-C does and returns its exit code.
func (p *watchProcess) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("watch did not stop within 30s after SIGINT\n%s", p.err.String())
		return -1
	}
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// verdictPathColumn is the path's column in the daily CSV.
const verdictPathColumn = 1

// verdictRows reads every daily CSV in out (header excluded).
func verdictRows(t *testing.T, out string) [][]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(out, "verdicts-*.csv"))
	var rows [][]string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			continue // a line being written
		}
		if len(recs) > 0 {
			rows = append(rows, recs[1:]...)
			if recs[0][verdictPathColumn] != "path" {
				t.Fatalf("%s header %v: column %d is not the path", f, recs[0], verdictPathColumn)
			}
		}
	}
	return rows
}

func ledgerLines(out string) int {
	b, _ := os.ReadFile(filepath.Join(out, live.LedgerName))
	return strings.Count(string(b), "\n")
}

// copyTo copies src to dst through a temporary name, as a camera's upload
// tool does.
func copyTo(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(dst), "~"+filepath.Base(dst))
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// webhookSink is an HTTP server that keeps the verdicts posted to it.
type webhookSink struct {
	mu       sync.Mutex
	verdicts []verdict.Verdict
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var v verdict.Verdict
	if err := json.Unmarshal(b, &v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.verdicts = append(s.verdicts, v)
	s.mu.Unlock()
}

func (s *webhookSink) got() []verdict.Verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]verdict.Verdict(nil), s.verdicts...)
}

// watchFixture trains a tiny project and returns it with the first
// category's name and test images (one good, two defective).
func watchFixture(t *testing.T) (proj, cat string, images []string, env []string) {
	t.Helper()
	data, bb, env := fixture(t)
	proj = trainTiny(t, data, bb, env)
	entries, err := os.ReadDir(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			cat = e.Name()
			break
		}
	}
	good, _ := filepath.Glob(filepath.Join(data, cat, "test", "good", "*.png"))
	bad, _ := filepath.Glob(filepath.Join(data, cat, "test", "*", "*.png"))
	var defects []string
	for _, p := range bad {
		if filepath.Base(filepath.Dir(p)) != "good" {
			defects = append(defects, p)
		}
	}
	if len(good) == 0 || len(defects) < 2 {
		t.Fatalf("fixture: %d good, %d defective test images of %s", len(good), len(defects), cat)
	}
	return proj, cat, []string{good[0], defects[0], defects[1]}, env
}

func TestWatchWebhookRestart(t *testing.T) {
	proj, cat, images, env := watchFixture(t)
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	in, out := filepath.Join(t.TempDir(), "camera"), filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--project", proj, "--input", in, "--out", out, "--category", cat, "--threads", "2",
		"--webhook", srv.URL, "--settle", "50ms"}

	w := startWatch(t, env, args...)
	time.Sleep(300 * time.Millisecond) // let it start; files dropped earlier would be scored too
	copyTo(t, images[0], filepath.Join(in, "a.png"))
	copyTo(t, images[1], filepath.Join(in, "b.png"))
	if err := os.WriteFile(filepath.Join(in, "c.png"), []byte("\x89PNG\r\n\x1a\n truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "2 verdicts in the daily CSV and on the webhook, and the bad file in the ledger", func() bool {
		return len(verdictRows(t, out)) == 2 && len(sink.got()) == 2 && ledgerLines(out) == 3
	})
	if code := w.stop(t); code != exitCanceled {
		t.Fatalf("watch stopped with exit %d, want %d\n%s%s", code, exitCanceled, w.out.String(), w.err.String())
	}
	if !strings.Contains(w.out.String(), "2 scored") || !strings.Contains(w.out.String(), "1 unreadable") {
		t.Fatalf("watch summary:\n%s\nlog:\n%s", w.out.String(), w.err.String())
	}
	t.Logf("first run: %s", lastLine(w.out.String()))
	seen := map[string]bool{}
	for _, v := range sink.got() {
		seen[filepath.Base(v.Path)] = true
		if v.Category != cat || v.ModelVersion != 1 || v.Threshold <= 0 || (v.Decision != verdict.Pass && v.Decision != verdict.Fail) {
			t.Errorf("webhook verdict %+v", v)
		}
		if (v.Decision == verdict.Fail) != (v.Overlay != "") {
			t.Errorf("%s: decision %s, overlay %q", v.Path, v.Decision, v.Overlay)
		}
		if v.Overlay != "" {
			if _, err := os.Stat(v.Overlay); err != nil {
				t.Errorf("overlay: %v", err)
			}
		}
		if v.Latency() <= 0 {
			t.Errorf("%s: latency %v", v.Path, v.Latency())
		}
	}
	if !seen["a.png"] || !seen["b.png"] {
		t.Fatalf("webhook verdicts for %v, want a.png and b.png", seen)
	}

	// Restart: nothing is scored again; a file that arrives is.
	w = startWatch(t, env, args...)
	time.Sleep(300 * time.Millisecond)
	copyTo(t, images[2], filepath.Join(in, "d.png"))
	waitFor(t, "the new file's verdict", func() bool { return len(sink.got()) == 3 && len(verdictRows(t, out)) == 3 })
	time.Sleep(500 * time.Millisecond) // room for a wrong re-score to show up
	if code := w.stop(t); code != exitCanceled {
		t.Fatalf("second run: exit %d\n%s", code, w.err.String())
	}
	if !strings.Contains(w.out.String(), "1 scored") || !strings.Contains(w.out.String(), "3 already done") {
		t.Fatalf("second run summary:\n%s\nlog:\n%s", w.out.String(), w.err.String())
	}
	rows := verdictRows(t, out)
	paths := map[string]int{}
	for _, r := range rows {
		paths[filepath.Base(r[verdictPathColumn])]++
	}
	if len(rows) != 3 || paths["a.png"] != 1 || paths["b.png"] != 1 || paths["d.png"] != 1 {
		t.Fatalf("daily CSV rows after the restart: %v", rows)
	}
}

func TestWatchMQTT(t *testing.T) {
	broker := mqtttest.Start(t)
	msgs := broker.Subscribe("dmad/test/#")
	proj, cat, images, env := watchFixture(t)
	in, out := filepath.Join(t.TempDir(), "camera"), filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, env, "--project", proj, "--input", in, "--out", out, "--category", cat, "--threads", "2",
		"--mqtt-broker", broker.URL(), "--mqtt-topic", "dmad/test/{category}/{decision}", "--mqtt-qos", "1", "--poll", "--poll-interval", "100ms",
		"--threshold", "0") // every image fails: an overlay is written
	copyTo(t, images[1], filepath.Join(in, "m.png"))
	m := mqtttest.Receive(t, msgs)
	var v verdict.Verdict
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		t.Fatalf("MQTT payload %q: %v", m.Payload, err)
	}
	if filepath.Base(v.Path) != "m.png" || m.Topic != "dmad/test/"+cat+"/fail" || v.Decision != verdict.Fail || m.QoS != 1 {
		t.Fatalf("MQTT message on %s (QoS %d): %+v", m.Topic, m.QoS, v)
	}
	if !strings.HasPrefix(v.Overlay, out) {
		t.Fatalf("the verdict names overlay %q, outside %s", v.Overlay, out)
	}
	// The verdict is published before its overlay is written; stopping
	// waits for the overlay queue.
	if code := w.stop(t); code != exitCanceled {
		t.Fatalf("watch: exit %d\n%s", code, w.err.String())
	}
	if st, err := os.Stat(v.Overlay); err != nil || st.Size() == 0 {
		t.Fatalf("overlay of the fail %q after stop: %v", v.Overlay, err)
	}
	if !strings.Contains(w.out.String(), "watch polling: 1 scored (1 fail)") {
		t.Fatalf("summary:\n%s\nlog:\n%s", w.out.String(), w.err.String())
	}
	t.Logf("%s", lastLine(w.out.String()))
}

func TestWatchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--input", "in", "--out", "out"},
		{"--project", "p.db", "--input", "in"},
		{"--project", "p.db", "--input", "in", "--out", "out", "--mqtt-qos", "3"},
		{"--project", "p.db", "--input", "in", "--out", "out", "--webhook", "ftp://x"},
	} {
		if r := cli(t, nil, append([]string{"watch"}, args...)...); r.code != exitUsage {
			t.Errorf("watch %v: exit %d, want %d\n%s", args, r.code, exitUsage, r.stderr)
		}
	}
	if r := cli(t, nil, "watch", "--help"); r.code != 0 || !strings.Contains(r.stderr, "Example:") {
		t.Errorf("watch --help: exit %d\n%s", r.code, r.stderr)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}
