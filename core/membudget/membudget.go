// Package membudget is the engine's memory setting: how much memory
// training and benchmarking may use for features, parsed from flags such
// as "4GiB", with a default derived from the machine's RAM.
package membudget

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// Sizes in bytes.
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
)

// Bounds of the default budget, and the smallest accepted setting.
const (
	// Min is the smallest budget accepted: below it even one block of
	// features and the training sample do not fit.
	Min = 256 * MiB
	// DefaultMax caps the default on large machines: the engine needs no
	// more to stream any dataset; a larger setting only keeps bigger
	// training sets in memory.
	DefaultMax = 4 * GiB
	// Fallback is the default where the machine's RAM is unknown.
	Fallback = 2 * GiB
)

// Default returns the default budget: an eighth of the machine's RAM
// (the engine shares the desktop with the operator's other programs),
// between 1 GiB and DefaultMax; Fallback where the RAM is unknown.
func Default() int64 {
	total, ok := TotalRAM()
	if !ok {
		return Fallback
	}
	return DefaultFor(total)
}

// DefaultFor is Default for a machine with total bytes of RAM.
func DefaultFor(total int64) int64 {
	return min(DefaultMax, max(GiB, total/8))
}

// Parse reads a size: a number with an optional unit B, KB, MB, GB, TB
// (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024); a bare number is
// bytes. Case and spaces between number and unit are ignored ("4GiB",
// "1.5 gb", "512MiB").
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil {
		return 0, fmt.Errorf("memory size %q: want a number with a unit such as 4GiB or 512MB", s)
	}
	mult, ok := map[string]float64{
		"": 1, "b": 1,
		"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}[unit]
	if !ok {
		return 0, fmt.Errorf("memory size %q: unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, t[i:])
	}
	b := v * mult
	if b >= math.MaxInt64 || math.IsInf(b, 0) {
		return 0, fmt.Errorf("memory size %q is too large", s)
	}
	return int64(b), nil
}

// Format writes b in the largest binary unit that keeps it at least 1,
// with at most two decimals ("4GiB", "1.5GiB", "512MiB").
func Format(b int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if b >= u.size {
			v := strconv.FormatFloat(float64(b)/float64(u.size), 'f', 2, 64)
			v = strings.TrimRight(strings.TrimRight(v, "0"), ".")
			return v + u.name
		}
	}
	return strconv.FormatInt(b, 10) + "B"
}

// Check reports whether b is an acceptable budget (at least Min).
func Check(b int64) error {
	if b < Min {
		return fmt.Errorf("memory budget %s is below the minimum of %s", Format(b), Format(Min))
	}
	return nil
}

// parseMeminfo reads MemTotal (in kB) from /proc/meminfo's text.
func parseMeminfo(s string) (int64, bool) {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || kb <= 0 {
				return 0, false
			}
			return kb * 1024, true
		}
	}
	return 0, false
}

// GoShare is the share of a budget the Go heap may take under LimitGo; the
// rest is left to ONNX Runtime's buffers (search matrices, the training
// graph), which the Go runtime does not see.
const GoShare = 0.75

// LimitGo makes the Go runtime hold its memory (heap and garbage not yet
// collected) to GoShare of budget while a job runs, by a soft limit
// (runtime/debug.SetMemoryLimit): without it the collector lets garbage
// grow to the size of the live heap (GOGC=100), and a training whose live
// heap is 1.5 GB peaked at 2.9 GB of Go memory. A tighter limit already in
// place (GOMEMLIMIT) is kept. The returned function restores the previous
// limit. budget ≤ 0 sets nothing.
func LimitGo(budget int64) (restore func()) {
	if budget <= 0 {
		return func() {}
	}
	prev := debug.SetMemoryLimit(-1) // reads the current limit
	limit := int64(float64(budget) * GoShare)
	if limit >= prev {
		return func() {}
	}
	debug.SetMemoryLimit(limit)
	return func() { debug.SetMemoryLimit(prev) }
}
