package live

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmad/workstation/core/folderwatch"
	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/publish"
	"github.com/dmad/workstation/core/publish/mqtttest"
	"github.com/dmad/workstation/core/verdict"
)

func grey(t testing.TB, w, h int, shade uint8) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = shade ^ uint8(i%5)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// shadeScorer stands in for the model: the score is the image's mean
// brightness, decoded in full; fails get an overlay.
func shadeScorer(out string) folderwatch.Scorer {
	return func(ctx context.Context, path string) (verdict.Verdict, error) {
		img, err := imageio.Load(path)
		if err != nil {
			return verdict.Verdict{}, err
		}
		g := imageio.ToGray(img)
		sum := 0
		for _, p := range g.Pix {
			sum += int(p)
		}
		s := float64(sum) / float64(len(g.Pix)) / 255
		v := verdict.Verdict{Path: path, Category: "tile", Score: s, Threshold: 0.5, Decision: verdict.Decide(s, 0.5), ModelVersion: 1}
		if v.Decision == verdict.Fail {
			heat := []float32{0, 1, 1, 0}
			if err := SaveOverlay(out, &v, img, heat, 2, 2, 1.5); err != nil {
				return v, err
			}
		}
		return v, nil
	}
}

// hook is a webhook receiver that fails its first two requests.
type hook struct {
	mu    sync.Mutex
	calls int
	got   map[string]int
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.calls <= 2 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var v verdict.Verdict
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.got[filepath.Base(v.Path)]++
}

func (h *hook) names() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for k, v := range h.got {
		out[k] = v
	}
	return out
}

func csvRows(t *testing.T, out string) [][]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(out, "verdicts-*.csv"))
	var rows [][]string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := csv.NewReader(fh).ReadAll()
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		rows = append(rows, rs[1:]...)
	}
	return rows
}

func TestLiveEndToEnd(t *testing.T) {
	broker := mqtttest.Start(t)
	msgs := broker.Subscribe("dmad/#")
	h := &hook{got: map[string]int{}}
	srv := httptest.NewServer(h)
	defer srv.Close()

	in, out := t.TempDir(), t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	run := func(ctx context.Context, board *Board) (Result, error) {
		mq, err := publish.DialMQTT(publish.MQTTOptions{Broker: broker.URL(), ClientID: "live-test", QoS: 1,
			Topic: "dmad/{category}/{decision}", Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		wh := &publish.Webhook{URL: srv.URL, BaseDelay: 10 * time.Millisecond}
		return Run(ctx, Options{Input: in, Out: out, Board: board, Logger: quiet,
			Watch:   folderwatch.Options{Settle: 50 * time.Millisecond, BadAfter: 500 * time.Millisecond},
			Outputs: []publish.Output{wh, mq, board}}, shadeScorer(out))
	}
	board := NewBoard(10, 5)
	changed := make(chan struct{}, 100)
	board.OnChange(func() { changed <- struct{}{} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var res Result
	go func() {
		var err error
		res, err = run(ctx, board)
		done <- err
	}()
	waitBoard := func(b *Board, n int64) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			s := b.Snapshot()
			if s.Total+s.Bad >= n {
				return
			}
			select {
			case <-changed:
			case <-time.After(50 * time.Millisecond):
			case <-deadline:
				t.Fatalf("board has %d verdicts and %d bad files, want %d in all", s.Total, s.Bad, n)
			}
		}
	}

	dark, bright := grey(t, 120, 80, 40), grey(t, 120, 80, 220)
	// Written slowly in place.
	f, _ := os.Create(filepath.Join(in, "slow.png"))
	for i := 0; i < len(bright); i += len(bright) / 4 {
		f.Write(bright[i:min(i+len(bright)/4, len(bright))])
		time.Sleep(120 * time.Millisecond) // longer than the settle interval
	}
	f.Close()
	// Renamed in from a partial name.
	os.WriteFile(filepath.Join(in, "renamed.png.part"), dark, 0o644)
	os.Rename(filepath.Join(in, "renamed.png.part"), filepath.Join(in, "renamed.png"))
	// Duplicated: the same bytes under another name.
	os.WriteFile(filepath.Join(in, "dup1.png"), dark, 0o644)
	os.WriteFile(filepath.Join(in, "dup2.png"), dark, 0o644)
	// Corrupt.
	os.WriteFile(filepath.Join(in, "corrupt.png"), bright[:len(bright)/3], 0o644)
	waitBoard(board, 5)

	// Stop, then files arrive while stopped, then restart.
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if res.Watch.Scored != 4 || res.Watch.Bad != 1 || res.Watch.Failed != 0 {
		t.Errorf("first run: %+v", res.Watch)
	}
	for _, o := range res.Outputs {
		if o.Sent != 4 || o.Dropped != 0 || o.Failed != 0 {
			t.Errorf("first run, output %s: %+v, want 4 sent", o.Name, o)
		}
	}
	os.WriteFile(filepath.Join(in, "while-stopped.png"), bright, 0o644)
	board2 := NewBoard(10, 5)
	board2.OnChange(func() { changed <- struct{}{} })
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() {
		var err error
		res, err = run(ctx2, board2)
		done <- err
	}()
	waitBoard(board2, 1)
	time.Sleep(300 * time.Millisecond) // any stray rescoring would show now
	cancel2()
	if err := <-done; err != nil {
		t.Fatalf("second Run = %v", err)
	}
	if res.Watch.Scored != 1 || res.Watch.Skipped != 5 {
		t.Errorf("after restart: %+v, want 1 scored, 5 skipped (4 scored and 1 bad before)", res.Watch)
	}

	// Each good file exactly once in the CSV, the webhook and MQTT.
	want := []string{"dup1.png", "dup2.png", "renamed.png", "slow.png", "while-stopped.png"}
	var inCSV []string
	fails := 0
	for _, r := range csvRows(t, out) {
		inCSV = append(inCSV, filepath.Base(r[1]))
		if r[5] == verdict.Fail {
			fails++
			if _, err := os.Stat(r[6]); err != nil {
				t.Errorf("fail %s: overlay %q: %v", r[1], r[6], err)
			}
		} else if r[6] != "" {
			t.Errorf("pass %s has an overlay %q", r[1], r[6])
		}
	}
	sort.Strings(inCSV)
	if strings.Join(inCSV, ",") != strings.Join(want, ",") || fails != 2 {
		t.Errorf("CSV rows %v with %d fails, want %v with 2 (slow, while-stopped)", inCSV, fails, want)
	}
	hooked := h.names()
	for _, n := range want {
		if hooked[n] != 1 {
			t.Errorf("webhook got %s %d times, want once (after 2 failed requests it retried)", n, hooked[n])
		}
	}
	var topics []string
	for range want {
		m := mqtttest.Receive(t, msgs)
		var v verdict.Verdict
		if err := json.Unmarshal(m.Payload, &v); err != nil {
			t.Fatal(err)
		}
		topics = append(topics, filepath.Base(v.Path)+"@"+m.Topic)
	}
	sort.Strings(topics)
	wantTopics := "dup1.png@dmad/tile/pass,dup2.png@dmad/tile/pass,renamed.png@dmad/tile/pass,slow.png@dmad/tile/fail,while-stopped.png@dmad/tile/fail"
	if strings.Join(topics, ",") != wantTopics {
		t.Errorf("MQTT messages %v, want %s", topics, wantTopics)
	}
	select {
	case m := <-msgs:
		t.Errorf("an extra MQTT message: %s %s", m.Topic, m.Payload)
	case <-time.After(200 * time.Millisecond):
	}

	// The live view of the first run.
	s := board.Snapshot()
	if s.Total != 4 || s.Failed != 1 || s.Bad != 1 || s.Yield != 0.75 || len(s.Fails) != 1 || filepath.Base(s.Fails[0].Path) != "slow.png" ||
		len(s.BadFiles) != 1 || filepath.Base(s.BadFiles[0].Path) != "corrupt.png" || s.Latest == nil || s.LatencyMax <= 0 {
		t.Errorf("board: %+v", s)
	}
}

func TestBoardRollingYield(t *testing.T) {
	b := NewBoard(4, 2)
	for i, d := range []string{verdict.Fail, verdict.Pass, verdict.Fail, verdict.Pass, verdict.Pass, verdict.Fail} {
		b.Publish(context.Background(), verdict.Verdict{Path: string(rune('a' + i)), Decision: d})
	}
	s := b.Snapshot()
	// The last 4 are fail, pass, pass, fail: yield 0.5. Fails kept: f, c.
	if s.Window != 4 || s.Yield != 0.5 || s.Total != 6 || s.Failed != 3 || len(s.Fails) != 2 || s.Fails[0].Path != "f" || s.Fails[1].Path != "c" || s.Latest.Path != "f" {
		t.Errorf("snapshot %+v", s)
	}
	if e := NewBoard(0, 0).Snapshot(); e.Latest != nil || e.Yield != 0 || e.Window != 0 {
		t.Errorf("empty board %+v", e)
	}
}

func TestRunRefusesOutputInsideInput(t *testing.T) {
	in := t.TempDir()
	_, err := Run(context.Background(), Options{Input: in, Out: in}, shadeScorer(in))
	if err == nil || !strings.Contains(err.Error(), "is the input folder") {
		t.Errorf("Run with out == in: %v", err)
	}
}

// The overlay writer names the overlay in the verdict at once and writes
// it in the background; after Close every overlay is a complete PNG under
// its name and no temporary file is left. A writer that cannot write says
// how many overlays it lost.
func TestOverlayWriter(t *testing.T) {
	out := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	heat := []float32{0, 0.2, 0.8, 1}
	w := NewOverlayWriter(out, 2, nil)
	var vs []verdict.Verdict
	for i := range 5 {
		v := verdict.Verdict{Path: fmt.Sprintf("/line/cam/%d.png", i), Decision: verdict.Fail, ScoredAt: time.Now()}
		w.Queue(&v, img, heat, 2, 2, 1.5)
		if v.Overlay == "" || !strings.HasPrefix(v.Overlay, out) {
			t.Fatalf("verdict %d names overlay %q", i, v.Overlay)
		}
		vs = append(vs, v)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		f, err := os.Open(v.Overlay)
		if err != nil {
			t.Fatal(err)
		}
		got, err := png.Decode(f)
		f.Close()
		if err != nil || got.Bounds() != img.Bounds() {
			t.Fatalf("overlay %s: %v, %v", v.Overlay, err, got)
		}
	}
	parts, _ := filepath.Glob(filepath.Join(filepath.Dir(vs[0].Overlay), "*.part"))
	if len(parts) > 0 {
		t.Fatalf("temporary files left: %v", parts)
	}

	blocked := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocked, nil, 0o644)
	w = NewOverlayWriter(blocked, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for range 2 {
		v := verdict.Verdict{Path: "/x.png", Decision: verdict.Fail}
		w.Queue(&v, img, heat, 2, 2, 1.5)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "2 overlay(s) not written") {
		t.Fatalf("want both lost overlays reported, got %v", err)
	}
}

// An output folder inside a recursively watched input would have its
// overlays scored: Run refuses it, naming both folders.
func TestRunRefusesOutputInsideRecursiveInput(t *testing.T) {
	in := t.TempDir()
	out := filepath.Join(in, "results")
	_, err := Run(context.Background(), Options{Input: in, Out: out, Watch: folderwatch.Options{Recursive: true}},
		func(ctx context.Context, path string) (verdict.Verdict, error) { return verdict.Verdict{}, nil })
	if err == nil || !strings.Contains(err.Error(), "inside the input folder") {
		t.Fatalf("want a refusal naming the folders, got %v", err)
	}
}
