package publish

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmad/workstation/core/verdict"
)

func sampleVerdict(name string) verdict.Verdict {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return verdict.Verdict{Path: "/in/" + name, Category: "bottle", Score: 0.82, Threshold: 0.5,
		Decision: verdict.Fail, Overlay: "/out/" + name + "_overlay.png", ModelVersion: 3,
		FileClosed: at, ScoredAt: at.Add(180 * time.Millisecond)}
}

func TestBackoff(t *testing.T) {
	base, max := 100*time.Millisecond, time.Second
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for n, w := range want {
		if got := Backoff(n, base, max); got != w*time.Millisecond {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, w*time.Millisecond)
		}
	}
}

func TestWebhook(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int // answers in order; the last repeats
		wantErr  string
		wantHits int
	}{
		{"ok", []int{200}, "", 1},
		{"fails then succeeds", []int{503, 500, 429, 204}, "", 4},
		{"always down", []int{502}, "502", 4},
		{"rejected is final", []int{400}, "400", 1},
		{"not found is final", []int{404}, "404", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			var mu sync.Mutex
			var bodies []verdict.Verdict
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(hits.Add(1))
				if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Token") != "s3cret" {
					t.Errorf("request %s with content type %q, token %q", r.Method, r.Header.Get("Content-Type"), r.Header.Get("X-Token"))
				}
				var v verdict.Verdict
				if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
					t.Errorf("body is not a verdict: %v", err)
				}
				mu.Lock()
				bodies = append(bodies, v)
				mu.Unlock()
				st := tc.statuses[min(n-1, len(tc.statuses)-1)]
				w.WriteHeader(st)
				io.WriteString(w, http.StatusText(st))
			}))
			defer srv.Close()
			wh := &Webhook{URL: srv.URL, Attempts: 4, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond,
				Header: http.Header{"X-Token": {"s3cret"}}}
			v := sampleVerdict("a.png")
			err := wh.Publish(context.Background(), v)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Publish = %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), srv.URL)) {
				t.Fatalf("Publish = %v, want an error with %s naming the URL", err, tc.wantErr)
			}
			if int(hits.Load()) != tc.wantHits {
				t.Errorf("%d requests, want %d", hits.Load(), tc.wantHits)
			}
			for _, b := range bodies {
				if b.Path != v.Path || b.Score != v.Score || b.Decision != v.Decision || !b.ScoredAt.Equal(v.ScoredAt) || b.Overlay != v.Overlay {
					t.Errorf("server got %+v, want %+v", b, v)
				}
			}
		})
	}
}

func TestWebhookUnreachableAndCancel(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	wh := &Webhook{URL: url, Attempts: 3, BaseDelay: time.Millisecond}
	if err := wh.Publish(context.Background(), sampleVerdict("a.png")); err == nil || !strings.Contains(err.Error(), url) {
		t.Errorf("Publish to a closed port = %v, want an error naming it", err)
	}
	// Cancelled during the back-off: returns at once with the context error.
	wh = &Webhook{URL: url, Attempts: 10, BaseDelay: time.Hour, MaxDelay: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := wh.Publish(ctx, sampleVerdict("a.png"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Publish with a deadline = %v after %v, want the deadline error promptly", err, time.Since(start))
	}
}
