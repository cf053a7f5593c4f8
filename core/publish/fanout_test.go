package publish

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/dmad/workstation/core/verdict"
)

// memOutput records verdicts; block, when set, holds every Publish until
// it is closed or the context ends.
type memOutput struct {
	name  string
	block chan struct{}
	fail  bool

	mu     sync.Mutex
	got    []string
	closed bool
}

func (m *memOutput) Name() string { return m.name }
func (m *memOutput) Publish(ctx context.Context, v verdict.Verdict) error {
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.fail {
		return errors.New("refused")
	}
	m.mu.Lock()
	m.got = append(m.got, v.Path)
	m.mu.Unlock()
	return nil
}
func (m *memOutput) Close(context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}
func (m *memOutput) count() int { m.mu.Lock(); defer m.mu.Unlock(); return len(m.got) }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestFanOutSlowOutputDoesNotBlockOthers(t *testing.T) {
	fast := &memOutput{name: "fast"}
	stuck := &memOutput{name: "stuck", block: make(chan struct{})}
	failing := &memOutput{name: "failing", fail: true}
	f := NewFanOut(FanOutOptions{Queue: 8, Timeout: 10 * time.Second, Logger: quietLog()}, fast, stuck, failing)
	const n = 100
	// Each verdict reaches the fast output while the stuck one holds its
	// first: publish the next only when the fast output has the previous.
	for i := 0; i < n; i++ {
		f.Publish(sampleVerdict("img" + string(rune('A'+i%26)) + ".png"))
		deadline := time.Now().Add(5 * time.Second)
		for fast.count() < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("verdict %d did not reach the fast output within 5s while another output is stuck", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	st := f.Stats()
	if st[0].Sent != n || st[0].Dropped != 0 {
		t.Errorf("fast output: %+v, want all %d sent", st[0], n)
	}
	// The stuck output holds one verdict in Publish and 8 in its queue.
	if st[1].Sent != 0 || st[1].Dropped != n-8-1 || st[1].Queued != 8 {
		t.Errorf("stuck output: %+v, want %d dropped, 8 queued", st[1], n-9)
	}
	close(stuck.block) // it recovers: the queued ones go through on Close
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st = f.Stats()
	if st[1].Sent != 9 || stuck.count() != 9 {
		t.Errorf("stuck output after recovery: %+v", st[1])
	}
	if st[2].Failed+st[2].Dropped != n || st[2].Failed == 0 || st[2].Sent != 0 {
		t.Errorf("failing output: %+v, want %d failed or dropped", st[2], n)
	}
	if !fast.closed || !stuck.closed || !failing.closed {
		t.Error("Close did not close every output")
	}
	before := f.Stats()[0].Dropped
	f.Publish(sampleVerdict("late.png")) // after Close: counted, not a panic
	if got := f.Stats()[0].Dropped; got != before+1 {
		t.Errorf("a verdict after Close: %d dropped, want %d", got, before+1)
	}
}

func TestFanOutCloseGivesUpAtDeadline(t *testing.T) {
	stuck := &memOutput{name: "stuck", block: make(chan struct{})}
	f := NewFanOut(FanOutOptions{Queue: 4, Timeout: time.Hour, Logger: quietLog()}, stuck)
	for i := 0; i < 5; i++ {
		f.Publish(sampleVerdict("a.png"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := f.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("Close = %v after %v, want the deadline error promptly", err, time.Since(start))
	}
	st := f.Stats()[0]
	if st.Sent != 0 || st.Failed+st.Dropped != 5 {
		t.Errorf("after an abandoned close: %+v, want all 5 failed or dropped", st)
	}
}
