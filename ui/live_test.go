package ui_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/dmad/workstation/core/live"
	"github.com/dmad/workstation/core/synth"
	"github.com/dmad/workstation/core/verdict"
	"github.com/dmad/workstation/ui"
	"github.com/dmad/workstation/ui/uitest"
)

// waitLive polls the live view until cond holds (a minute at most).
func waitLive(t *testing.T, ws *ui.Workstation, what string, cond func(status, latest, counts, fails, bads string) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s, l, c, f, b := ws.LiveText()
		if cond(s, l, c, f, b) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: status %q, latest %q, counts %q, fails %q, bad %q", what, s, l, c, f, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The live view shows what its LiveFunc publishes to the board.
func TestLiveViewShowsBoard(t *testing.T) {
	a := env(t)
	var got ui.LiveRequest
	// The fail's overlay (red) is what the view shows of it, not the image (grey).
	cam := t.TempDir()
	writePNG := func(name string, c color.Color) string {
		img := image.NewRGBA(image.Rect(0, 0, 8, 8))
		draw.Draw(img, img.Bounds(), image.NewUniform(c), image.Point{}, draw.Src)
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(cam, name)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	grey, red := color.RGBA{128, 128, 128, 255}, color.RGBA{255, 0, 0, 255}
	aPath, bPath, bOverlay := writePNG("a.png", grey), writePNG("b.png", grey), writePNG("b_overlay.png", red)
	deps := ui.Deps{Recent: &memRecent{}, DataDir: t.TempDir(),
		CreateProject: func(path, name string) (ui.Project, error) { return uitest.NewProject(path, name), nil },
		Live: func(ctx context.Context, req ui.LiveRequest, b *live.Board) error {
			got = req
			now := time.Now()
			b.Publish(ctx, verdict.Verdict{Path: aPath, Score: 0.2, Threshold: 0.5, Decision: verdict.Pass, FileClosed: now.Add(-80 * time.Millisecond), ScoredAt: now})
			b.Publish(ctx, verdict.Verdict{Path: bPath, Score: 0.9, Threshold: 0.5, Decision: verdict.Fail, Overlay: bOverlay, FileClosed: now.Add(-120 * time.Millisecond), ScoredAt: now})
			b.AddBad("/cam/c.png", os.ErrInvalid)
			<-ctx.Done()
			return ctx.Err()
		}}
	deps.Engine = &uitest.Engine{}
	ws := ui.New(a, deps)
	t.Cleanup(ws.Close)
	if err := ws.CreateProject(filepath.Join(t.TempDir(), "p.dmad"), "Line 3"); err != nil {
		t.Fatal(err)
	}
	ws.ShowScreen(ui.ScreenLive)
	in := filepath.Join(t.TempDir(), "cam")
	ws.LiveStart(in, true)
	// One snapshot sets the counts, then the lists: wait for the last.
	waitLive(t, ws, "the board", func(s, l, c, f, b string) bool {
		return strings.Contains(c, "1 unreadable") && strings.Contains(b, "c.png")
	})
	_, latest, counts, fails, bads := ws.LiveText()
	if !strings.HasPrefix(latest, "FAIL  b.png  score 0.9000 (threshold 0.5000)") ||
		!strings.Contains(counts, "2 scored, 1 fail, 1 unreadable · yield 50.0% over the last 2") ||
		!strings.Contains(fails, "b.png") || strings.Contains(fails, "a.png") || !strings.Contains(bads, "c.png") {
		t.Fatalf("live view: latest %q, counts %q, fails %q, bad %q", latest, counts, fails, bads)
	}
	for i := 0; ; i++ {
		var c color.Color
		fyne.DoAndWait(func() {
			if img := ws.LiveImage(); img != nil {
				c = img.At(4, 4)
			}
		})
		if c != nil && color.RGBAModel.Convert(c) == red {
			break
		}
		if i == 100 {
			t.Fatalf("the latest image shows %v, want the fail's overlay (red)", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.Input != in || got.Out != in+"-verdicts" || !got.Poll || got.Project == nil {
		t.Fatalf("live request %+v", got)
	}
	ws.LiveStop()
	ws.Wait()
	if status, _, _, _, _ := ws.LiveText(); status != "Stopped." {
		t.Fatalf("status after stop %q", status)
	}
}

// TestRealEngineLive trains on the real engine, then watches a folder from
// the Live screen: a dropped image gets a verdict in the view and the
// daily CSV, a corrupt one is listed as unreadable.
func TestRealEngineLive(t *testing.T) {
	ws, _ := realHarness(t)
	data := filepath.Join(t.TempDir(), "data")
	if err := synth.WriteDataset(data, synth.DatasetOptions{Categories: 1, TrainPerCategory: 6, TestGoodPerCategory: 2,
		TestDefectPerCategory: 2, Size: 64, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if err := ws.CreateProject(filepath.Join(t.TempDir(), "line3.dmad"), "Line 3"); err != nil {
		t.Fatal(err)
	}
	ws.ImportFolder(data)
	ws.Wait()
	ws.ShowScreen(ui.ScreenTrain)
	epochs, start, _ := ws.TrainForm()
	epochs.SetText("1")
	test.Tap(start)
	ws.Wait()
	if stage, result, _ := ws.TrainStatus(); stage != "Stage: done" {
		t.Fatalf("training: %q %q", stage, result)
	}
	goods, _ := filepath.Glob(filepath.Join(data, "*", "test", "good", "*.png"))
	if len(goods) == 0 {
		t.Fatal("no test image")
	}
	in := filepath.Join(t.TempDir(), "cam")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	ws.ShowScreen(ui.ScreenLive)
	// A wrong webhook URL is named before anything starts.
	ws.LiveOptions(true, "mes.local/hook", "")
	ws.LiveStart(in, false)
	if status, _, _, _, _ := ws.LiveText(); !strings.Contains(status, "Not started") || !strings.Contains(status, "mes.local/hook") {
		t.Fatalf("status with a bad webhook URL: %q", status)
	}
	var posted atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if body, _ := io.ReadAll(r.Body); strings.Contains(string(body), "part1.png") {
			posted.Add(1)
		}
	}))
	defer hook.Close()
	ws.LiveOptions(true, hook.URL, "")
	ws.LiveStart(in, false)
	b, err := os.ReadFile(goods[0])
	if err != nil {
		t.Fatal(err)
	}
	// In a subfolder: the view watches subfolders when asked to.
	if err := os.MkdirAll(filepath.Join(in, "cam1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, "cam1", "part1.png"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, "part2.png"), []byte("\x89PNG\r\n\x1a\n cut"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitLive(t, ws, "a verdict and an unreadable file", func(s, l, c, f, bad string) bool {
		return strings.Contains(c, "1 scored") && strings.Contains(c, "1 unreadable")
	})
	ws.LiveStop()
	ws.Wait()
	_, latest, _, _, bads := ws.LiveText()
	if !strings.Contains(latest, "part1.png") || !strings.Contains(bads, "part2.png") {
		t.Fatalf("latest %q, bad %q", latest, bads)
	}
	csvs, _ := filepath.Glob(filepath.Join(ws.LiveOut(), "verdicts-*.csv"))
	if len(csvs) != 1 {
		t.Fatalf("daily CSVs in %s: %v", ws.LiveOut(), csvs)
	}
	if b, _ := os.ReadFile(csvs[0]); !strings.Contains(string(b), "part1.png") || strings.Contains(string(b), "part2.png") {
		t.Fatalf("daily CSV:\n%s", b)
	}
	if posted.Load() != 1 {
		t.Fatalf("the webhook got %d posts of part1.png's verdict, want 1", posted.Load())
	}
}

// closeCheck is a project whose Close records whether the live run had
// already returned.
type closeCheck struct {
	*uitest.Project
	returned        *atomic.Bool
	closedAfterLive *atomic.Bool
}

func (p closeCheck) Close() error {
	p.closedAfterLive.Store(p.returned.Load())
	return p.Project.Close()
}

// Opening another project stops the live run before the old project closes.
func TestLiveStopsBeforeProjectSwitch(t *testing.T) {
	a := env(t)
	var returned, closedAfterLive atomic.Bool
	deps := ui.Deps{Recent: &memRecent{}, DataDir: t.TempDir(), Engine: &uitest.Engine{},
		CreateProject: func(path, name string) (ui.Project, error) {
			return closeCheck{uitest.NewProject(path, name), &returned, &closedAfterLive}, nil
		},
		Live: func(ctx context.Context, req ui.LiveRequest, b *live.Board) error {
			<-ctx.Done()
			time.Sleep(100 * time.Millisecond) // finishing an image
			returned.Store(true)
			return ctx.Err()
		}}
	ws := ui.New(a, deps)
	t.Cleanup(ws.Close)
	if err := ws.CreateProject(filepath.Join(t.TempDir(), "a.dmad"), "A"); err != nil {
		t.Fatal(err)
	}
	ws.ShowScreen(ui.ScreenLive)
	ws.LiveStart(filepath.Join(t.TempDir(), "cam"), false)
	if err := ws.CreateProject(filepath.Join(t.TempDir(), "b.dmad"), "B"); err != nil {
		t.Fatal(err)
	}
	if !closedAfterLive.Load() {
		t.Fatal("the first project was closed while the live run still used it")
	}
}
