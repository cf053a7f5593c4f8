// Package publish sends live-inspection verdicts to outputs: an HTTP
// webhook, an MQTT broker, and anything else with a Publish method (the
// GUI's live view). A FanOut feeds several outputs so that one slow or dead
// output never holds up the others or the watcher.
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmad/workstation/core/verdict"
)

// Output is where verdicts go.
type Output interface {
	// Name identifies the output in logs and statistics.
	Name() string
	// Publish delivers one verdict, retrying as the output sees fit, until
	// ctx ends.
	Publish(ctx context.Context, v verdict.Verdict) error
	// Close releases the output's connections.
	Close(ctx context.Context) error
}

// OutputStats counts what happened to the verdicts given to one output.
type OutputStats struct {
	Name string
	// Sent were delivered; Failed were given up after the output's retries
	// or the per-verdict timeout; Dropped never reached the output because
	// its queue was full.
	Sent, Failed, Dropped int64
	// Queued are waiting now.
	Queued int
}

// FanOutOptions configures a FanOut.
type FanOutOptions struct {
	// Queue is the number of verdicts that may wait per output (default 256).
	Queue int
	// Timeout bounds one verdict's delivery, retries included (default 30s).
	Timeout time.Duration
	// Logger receives delivery failures and drops; nil: slog.Default().
	Logger *slog.Logger
}

// FanOut delivers every verdict to each of its outputs. Each output has its
// own bounded queue and goroutine: Publish never blocks, and a verdict that
// finds an output's queue full is dropped for that output only (counted and
// logged).
type FanOut struct {
	lanes   []*lane
	log     *slog.Logger
	timeout time.Duration

	mu     sync.RWMutex // guards closed against sends on closed queues
	closed bool
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

type lane struct {
	out                   Output
	q                     chan verdict.Verdict
	sent, failed, dropped atomic.Int64
}

// NewFanOut starts delivering to outs.
func NewFanOut(opts FanOutOptions, outs ...Output) *FanOut {
	if opts.Queue <= 0 {
		opts.Queue = 256
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &FanOut{log: opts.Logger, timeout: opts.Timeout, cancel: cancel}
	for _, o := range outs {
		l := &lane{out: o, q: make(chan verdict.Verdict, opts.Queue)}
		f.lanes = append(f.lanes, l)
		f.wg.Add(1)
		go f.deliver(ctx, l)
	}
	return f
}

func (f *FanOut) deliver(ctx context.Context, l *lane) {
	defer f.wg.Done()
	for v := range l.q {
		if ctx.Err() != nil {
			l.dropped.Add(1) // abandoned by Close
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, f.timeout)
		err := l.out.Publish(dctx, v)
		cancel()
		if err != nil {
			l.failed.Add(1)
			f.log.Warn("output failed; verdict not delivered there", "output", l.out.Name(), "file", v.Path, "err", err)
			continue
		}
		l.sent.Add(1)
	}
}

// Publish queues v for every output and returns at once.
func (f *FanOut) Publish(v verdict.Verdict) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, l := range f.lanes {
		if f.closed {
			l.dropped.Add(1)
			continue
		}
		select {
		case l.q <- v:
		default:
			n := l.dropped.Add(1)
			// The first drop and then every 100th, not one line per verdict
			// while an output is down.
			if n == 1 || n%100 == 0 {
				f.log.Warn("output queue full; verdict dropped for this output", "output", l.out.Name(), "file", v.Path, "dropped", n)
			}
		}
	}
}

// Sink adapts Publish to a watcher's sink.
func (f *FanOut) Sink(_ context.Context, v verdict.Verdict) error {
	f.Publish(v)
	return nil
}

// Stats returns each output's counters, in the order of NewFanOut.
func (f *FanOut) Stats() []OutputStats {
	out := make([]OutputStats, len(f.lanes))
	for i, l := range f.lanes {
		out[i] = OutputStats{Name: l.out.Name(), Sent: l.sent.Load(), Failed: l.failed.Load(),
			Dropped: l.dropped.Load(), Queued: len(l.q)}
	}
	return out
}

// Close stops taking verdicts, delivers those queued until ctx ends (then
// abandons the rest), and closes the outputs.
func (f *FanOut) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	for _, l := range f.lanes {
		close(l.q)
	}
	f.mu.Unlock()
	drained := make(chan struct{})
	go func() { f.wg.Wait(); close(drained) }()
	var errs []error
	select {
	case <-drained:
	case <-ctx.Done():
		f.cancel() // abort deliveries in progress; the rest fail fast
		<-drained
		errs = append(errs, fmt.Errorf("publish: closed before all queued verdicts were delivered: %w", ctx.Err()))
	}
	f.cancel()
	for _, l := range f.lanes {
		if err := l.out.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", l.out.Name(), err))
		}
	}
	return errors.Join(errs...)
}
