package live

import (
	"context"
	"sync"
	"time"

	"github.com/dmad/workstation/core/verdict"
)

// BadFile is a file that could not be scored.
type BadFile struct {
	Path string
	Err  string
	At   time.Time
}

// Board is the state of a live view: the latest verdict, the yield over
// the last verdicts, the last fails and the files that could not be
// scored. It is a publish.Output (give it to the fan-out) and safe for
// concurrent use; a GUI reads Snapshot when OnChange fires.
type Board struct {
	window, keep int

	mu       sync.Mutex
	latest   *verdict.Verdict
	recent   []bool // ring of the last window decisions, true = fail
	next     int
	filled   int
	fails    []verdict.Verdict // newest first, at most keep
	bad      []BadFile         // newest first, at most keep
	total    int64
	failed   int64
	badCount int64
	latency  []time.Duration // ring of the last window latencies
	onChange []func()
}

// NewBoard returns a board with the yield over the last window verdicts
// (default 100) that keeps the last keep fails and bad files (default 20).
func NewBoard(window, keep int) *Board {
	if window <= 0 {
		window = 100
	}
	if keep <= 0 {
		keep = 20
	}
	return &Board{window: window, keep: keep, recent: make([]bool, window), latency: make([]time.Duration, window)}
}

// OnChange registers f, called (outside the board's lock, on the
// publishing goroutine) after each change. A GUI schedules a refresh there.
func (b *Board) OnChange(f func()) {
	b.mu.Lock()
	b.onChange = append(b.onChange, f)
	b.mu.Unlock()
}

// Name is "live view".
func (b *Board) Name() string { return "live view" }

// Close does nothing.
func (b *Board) Close(context.Context) error { return nil }

// Publish adds a verdict.
func (b *Board) Publish(_ context.Context, v verdict.Verdict) error {
	b.mu.Lock()
	vc := v
	b.latest = &vc
	fail := v.Decision == verdict.Fail
	b.recent[b.next] = fail
	b.latency[b.next] = v.Latency()
	b.next = (b.next + 1) % b.window
	b.filled = min(b.filled+1, b.window)
	b.total++
	if fail {
		b.failed++
		b.fails = append([]verdict.Verdict{v}, b.fails[:min(len(b.fails), b.keep-1)]...)
	}
	fs := b.onChange
	b.mu.Unlock()
	for _, f := range fs {
		f()
	}
	return nil
}

// AddBad records a file that could not be scored (a watcher's OnBad).
func (b *Board) AddBad(path string, err error) {
	b.mu.Lock()
	b.badCount++
	b.bad = append([]BadFile{{Path: path, Err: err.Error(), At: time.Now()}}, b.bad[:min(len(b.bad), b.keep-1)]...)
	fs := b.onChange
	b.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// Snapshot is a copy of a board's state.
type Snapshot struct {
	// Latest is the last verdict (nil before the first).
	Latest *verdict.Verdict
	// Yield is the fraction of passes among the last Window verdicts (0
	// when there are none).
	Yield  float64
	Window int
	// Total, Failed and Bad count everything since the board was made.
	Total, Failed, Bad int64
	// Fails and BadFiles are the last ones, newest first.
	Fails    []verdict.Verdict
	BadFiles []BadFile
	// LatencyP50 and LatencyMax are over the last Window verdicts: from
	// the file's completion to its verdict.
	LatencyP50, LatencyMax time.Duration
}

// Snapshot returns the board's state.
func (b *Board) Snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Snapshot{Window: b.filled, Total: b.total, Failed: b.failed, Bad: b.badCount,
		Fails: append([]verdict.Verdict(nil), b.fails...), BadFiles: append([]BadFile(nil), b.bad...)}
	if b.latest != nil {
		v := *b.latest
		s.Latest = &v
	}
	if b.filled > 0 {
		pass := 0
		lat := make([]time.Duration, 0, b.filled)
		for i := 0; i < b.filled; i++ {
			if !b.recent[i] {
				pass++
			}
			lat = append(lat, b.latency[i])
		}
		s.Yield = float64(pass) / float64(b.filled)
		st := verdict.Latencies(lat)
		s.LatencyP50, s.LatencyMax = st.P50, st.Max
	}
	return s
}
