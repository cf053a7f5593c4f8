package membudget

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4GiB", 4 << 30, true},
		{"4gib", 4 << 30, true},
		{" 1.5 GiB ", 3 << 29, true},
		{"512MiB", 512 << 20, true},
		{"2GB", 2e9, true},
		{"300mb", 300e6, true},
		{"1048576", 1 << 20, true},
		{"64KiB", 64 << 10, true},
		{"1TiB", 1 << 40, true},
		{"", 0, false},
		{"GiB", 0, false},
		{"4 gigs", 0, false},
		{"-1GiB", 0, false},
		{"1e3GiB", 0, false},
		{"99999999999TiB", 0, false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q): error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && got != tc.want {
			t.Errorf("Parse(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestFormatRoundTrips(t *testing.T) {
	for _, b := range []int64{4 << 30, 3 << 29, 512 << 20, 64 << 10, 100} {
		s := Format(b)
		got, err := Parse(s)
		if err != nil || got != b {
			t.Errorf("Parse(Format(%d) = %q) = %d, %v", b, s, got, err)
		}
	}
	if s := Format(4 << 30); s != "4GiB" {
		t.Errorf("Format(4 GiB) = %q", s)
	}
}

func TestDefaultFor(t *testing.T) {
	for _, tc := range []struct{ ram, want int64 }{
		{4 * GiB, GiB},       // an eighth would be 512 MiB: at least 1 GiB
		{16 * GiB, 2 * GiB},  // an eighth
		{24 * GiB, 3 * GiB},  // this build machine
		{128 * GiB, 4 * GiB}, // capped
	} {
		if got := DefaultFor(tc.ram); got != tc.want {
			t.Errorf("DefaultFor(%s) = %s, want %s", Format(tc.ram), Format(got), Format(tc.want))
		}
	}
	if d := Default(); Check(d) != nil {
		t.Errorf("Default() = %s fails Check", Format(d))
	}
}

func TestCheck(t *testing.T) {
	if Check(Min) != nil || Check(Min-1) == nil {
		t.Errorf("Check accepts the range wrongly around Min = %s", Format(Min))
	}
}

func TestParseMeminfo(t *testing.T) {
	got, ok := parseMeminfo("MemTotal:       24578532 kB\nMemFree:        17966148 kB\n")
	if !ok || got != 24578532*1024 {
		t.Errorf("parseMeminfo = %d, %v", got, ok)
	}
	if _, ok := parseMeminfo("MemFree: 10 kB\n"); ok {
		t.Error("parseMeminfo found MemTotal where there is none")
	}
}

// LimitGo sets a soft Go memory limit of GoShare of the budget for the
// job's duration and restores the previous one; it never loosens a tighter
// limit already in place.
func TestLimitGo(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(math.MaxInt64)
	restore := LimitGo(4 * GiB)
	if got := debug.SetMemoryLimit(-1); got != 3*GiB {
		t.Errorf("limit during the job %d, want %d", got, 3*GiB)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit after the job %d, want it restored", got)
	}
	debug.SetMemoryLimit(1 * GiB)
	LimitGo(4 * GiB)()
	if got := debug.SetMemoryLimit(-1); got != 1*GiB {
		t.Errorf("a tighter limit became %d", got)
	}
	LimitGo(0)()
	if got := debug.SetMemoryLimit(-1); got != 1*GiB {
		t.Errorf("budget 0 changed the limit to %d", got)
	}
}
