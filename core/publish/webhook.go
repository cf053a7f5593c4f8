package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/dmad/workstation/core/verdict"
)

// Webhook POSTs each verdict as JSON to a URL. Network errors, 408, 429
// and 5xx answers are retried with exponential back-off; other answers
// outside 2xx are final.
type Webhook struct {
	// URL receives the POSTs.
	URL string
	// Client sends them (default: a client with a 10s timeout).
	Client *http.Client
	// Header is added to every request (e.g. Authorization).
	Header http.Header
	// Attempts is the most tries per verdict (default 5).
	Attempts int
	// BaseDelay is the wait after the first failure, doubled after each
	// further one (default 200ms), up to MaxDelay (default 5s).
	BaseDelay, MaxDelay time.Duration
}

// CheckWebhookURL says whether u can receive a webhook: an absolute
// http:// or https:// URL with a host.
func CheckWebhookURL(u string) error {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return fmt.Errorf("webhook %q: want an http:// or https:// URL", u)
	}
	return nil
}

// Name is "webhook " and the URL.
func (w *Webhook) Name() string { return "webhook " + w.URL }

// Close does nothing: requests do not outlive Publish.
func (w *Webhook) Close(context.Context) error { return nil }

// Backoff is the wait before retry number n (0 for the first retry):
// base·2ⁿ, at most max.
func Backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// Publish POSTs v, retrying as described on Webhook.
func (w *Webhook) Publish(ctx context.Context, v verdict.Verdict) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("webhook: encode verdict of %s: %w", v.Path, err)
	}
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	attempts, base, maxDelay := w.Attempts, w.BaseDelay, w.MaxDelay
	if attempts <= 0 {
		attempts = 5
	}
	if base <= 0 {
		base = 200 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 5 * time.Second
	}
	var last error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			t := time.NewTimer(Backoff(i-1, base, maxDelay))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("webhook %s: %w (last error: %v)", w.URL, ctx.Err(), last)
			case <-t.C:
			}
		}
		retry, err := w.post(ctx, client, body)
		if err == nil {
			return nil
		}
		last = err
		if !retry || ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("webhook %s: %w", w.URL, last)
}

// post makes one request; retry says whether a failure is worth retrying.
func (w *Webhook) post(ctx context.Context, client *http.Client, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	for k, vs := range w.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return true, err
	}
	// Read a little of the body so the connection can be reused, and to
	// quote it in the error.
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	err = fmt.Errorf("answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout
	return retry, err
}
