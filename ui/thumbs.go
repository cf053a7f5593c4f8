package ui

import (
	"container/list"
	"context"
	"image"
	"log/slog"
	"sync"

	xdraw "golang.org/x/image/draw"
)

// thumbLoader decodes and downsizes thumbnails off the UI thread, newest
// request first (what the user scrolled to), and keeps an LRU cache.
type thumbLoader struct {
	load func(id string) (image.Image, error)
	size int
	cap  int

	mu       sync.Mutex
	cache    map[string]*list.Element
	lru      *list.List // of thumbEntry, most recent at front
	pending  []string   // stack: last is served first
	waiters  map[string][]func(image.Image)
	wake     chan struct{}
	decoded  int // number of decodes done, for tests and benchmarks
	maxStack int
}

type thumbEntry struct {
	id  string
	img image.Image
}

func newThumbLoader(ctx context.Context, workers, size, capacity int, load func(id string) (image.Image, error), wg *sync.WaitGroup) *thumbLoader {
	t := &thumbLoader{load: load, size: size, cap: capacity, cache: map[string]*list.Element{}, lru: list.New(),
		waiters: map[string][]func(image.Image){}, wake: make(chan struct{}, 1), maxStack: 256}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.work(ctx)
		}()
	}
	return t
}

// cached returns a cached thumbnail.
func (t *thumbLoader) cached(id string) (image.Image, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.cache[id]; ok {
		t.lru.MoveToFront(e)
		return e.Value.(thumbEntry).img, true
	}
	return nil, false
}

// request asks for a thumbnail; done runs on a worker goroutine (use
// fyne.Do in it). Old requests beyond the stack depth are dropped: their
// cells have scrolled away and will ask again.
func (t *thumbLoader) request(id string, done func(image.Image)) {
	t.mu.Lock()
	if e, ok := t.cache[id]; ok {
		img := e.Value.(thumbEntry).img
		t.mu.Unlock()
		done(img)
		return
	}
	_, waiting := t.waiters[id]
	t.waiters[id] = append(t.waiters[id], done)
	if !waiting {
		t.pending = append(t.pending, id)
		if len(t.pending) > t.maxStack {
			drop := t.pending[0]
			t.pending = t.pending[1:]
			delete(t.waiters, drop)
		}
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *thumbLoader) work(ctx context.Context) {
	for {
		t.mu.Lock()
		var id string
		if n := len(t.pending); n > 0 {
			id = t.pending[n-1]
			t.pending = t.pending[:n-1]
		}
		more := len(t.pending) > 0
		t.mu.Unlock()
		if id == "" {
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
			}
			continue
		}
		if more {
			select { // let a sibling worker pick up the rest
			case t.wake <- struct{}{}:
			default:
			}
		}
		img, err := t.load(id)
		var th image.Image
		if err != nil {
			slog.Warn("thumbnail", "image", id, "err", err)
		} else {
			th = downsize(img, t.size)
		}
		t.mu.Lock()
		t.decoded++
		if th != nil {
			t.cache[id] = t.lru.PushFront(thumbEntry{id, th})
			for t.lru.Len() > t.cap {
				old := t.lru.Back()
				t.lru.Remove(old)
				delete(t.cache, old.Value.(thumbEntry).id)
			}
		}
		ws := t.waiters[id]
		delete(t.waiters, id)
		t.mu.Unlock()
		if th != nil {
			for _, f := range ws {
				f(th)
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// decodes reports how many images were decoded so far.
func (t *thumbLoader) decodes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.decoded
}

// downsize fits img into size×size with bilinear filtering.
func downsize(img image.Image, size int) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= size && h <= size {
		return img
	}
	if w >= h {
		w, h = size, max(1, h*size/w)
	} else {
		w, h = max(1, w*size/h), size
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	xdraw.ApproxBiLinear.Scale(out, out.Bounds(), img, b, xdraw.Src, nil)
	return out
}
