package verdict

import (
	"testing"
	"time"
)

func TestLatencies(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want LatencyStats
	}{
		{"none", nil, LatencyStats{}},
		{"one", []time.Duration{5 * ms}, LatencyStats{Mean: 5 * ms, P50: 5 * ms, Max: 5 * ms}},
		{"unsorted", []time.Duration{30 * ms, 10 * ms, 20 * ms}, LatencyStats{Mean: 20 * ms, P50: 20 * ms, Max: 30 * ms}},
		{"even count takes the upper middle", []time.Duration{40 * ms, 10 * ms, 30 * ms, 20 * ms}, LatencyStats{Mean: 25 * ms, P50: 30 * ms, Max: 40 * ms}},
	} {
		if got := Latencies(tc.in); got != tc.want {
			t.Errorf("%s: Latencies = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
