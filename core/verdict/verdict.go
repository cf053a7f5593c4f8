// Package verdict holds the result of scoring one image in live inspection
// and its daily CSV log. Watchers produce verdicts, outputs (webhook, MQTT,
// the GUI's live view) consume them.
package verdict

import (
	"slices"
	"strconv"
	"time"
)

// Decisions, as in the inspection report's scores.csv.
const (
	Pass = "pass"
	Fail = "fail"
)

// Decide is Fail when score is at or above threshold, else Pass (the rule of
// the inspection report).
func Decide(score, threshold float64) string {
	if score >= threshold {
		return Fail
	}
	return Pass
}

// Verdict is one scored image.
type Verdict struct {
	// Path of the image file.
	Path string `json:"path"`
	// Category the model scored the image as (empty when the model has one).
	Category string `json:"category,omitempty"`
	// Score is the image anomaly score.
	Score float64 `json:"score"`
	// Threshold is the per-category decision threshold used.
	Threshold float64 `json:"threshold"`
	// Decision is Pass or Fail.
	Decision string `json:"decision"`
	// Overlay is the heatmap overlay PNG written for a fail ("" otherwise).
	Overlay string `json:"overlay,omitempty"`
	// ModelVersion is the project's model version that scored the image.
	ModelVersion int `json:"model_version,omitempty"`
	// FileClosed is when the file was last seen changing: its completion
	// time as far as the watcher can tell.
	FileClosed time.Time `json:"file_closed"`
	// ScoredAt is when the score was ready.
	ScoredAt time.Time `json:"scored_at"`
}

// LatencyStats are the mean, median and largest of a run's latencies.
type LatencyStats struct {
	Mean, P50, Max time.Duration
}

// Latencies summarises lat (sorted in place); the zero LatencyStats for
// none.
func Latencies(lat []time.Duration) LatencyStats {
	if len(lat) == 0 {
		return LatencyStats{}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return LatencyStats{Mean: sum / time.Duration(len(lat)), P50: lat[len(lat)/2], Max: lat[len(lat)-1]}
}

// Latency is the time from the file's completion to its verdict.
func (v Verdict) Latency() time.Duration {
	if v.FileClosed.IsZero() || v.ScoredAt.IsZero() {
		return 0
	}
	return v.ScoredAt.Sub(v.FileClosed)
}

// record is the CSV row of v, in the order of csvHeader.
func (v Verdict) record() []string {
	return []string{
		v.ScoredAt.Format(time.RFC3339Nano), v.Path, v.Category,
		strconv.FormatFloat(v.Score, 'g', -1, 64), strconv.FormatFloat(v.Threshold, 'g', -1, 64),
		v.Decision, v.Overlay, strconv.Itoa(v.ModelVersion),
		strconv.FormatFloat(float64(v.Latency().Microseconds())/1000, 'f', 3, 64),
	}
}

var csvHeader = []string{"scored_at", "path", "category", "score", "threshold", "decision", "overlay", "model_version", "latency_ms"}
