package verdict

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return rows
}

func TestDailyCSV(t *testing.T) {
	dir := t.TempDir()
	day1 := time.Date(2026, 3, 1, 23, 59, 0, 0, time.Local)
	day2 := day1.Add(2 * time.Minute)
	d, err := OpenDailyCSV(dir)
	if err != nil {
		t.Fatal(err)
	}
	vs := []Verdict{
		{Path: "/in/a.png", Category: "bottle", Score: 0.25, Threshold: 0.5, Decision: Pass, ScoredAt: day1, FileClosed: day1.Add(-120 * time.Millisecond)},
		{Path: "/in/b, \"odd\".png", Category: "bottle", Score: 0.75, Threshold: 0.5, Decision: Fail, Overlay: "/out/b.png", ScoredAt: day1.Add(time.Second)},
		{Path: "/in/c.png", Score: 1, Threshold: 0.5, Decision: Fail, ScoredAt: day2},
	}
	for _, v := range vs[:2] {
		if err := d.Append(v); err != nil {
			t.Fatal(err)
		}
	}
	// Rows are on disk before Close: a reader sees them at once.
	rows := readCSV(t, filepath.Join(dir, FileName(day1)))
	if len(rows) != 3 {
		t.Fatalf("day 1 has %d rows before close, want header + 2", len(rows))
	}
	if err := d.Append(vs[2]); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// A restart appends to the same day's file without a second header.
	d2, err := OpenDailyCSV(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Append(Verdict{Path: "/in/d.png", ScoredAt: day2.Add(time.Second), Decision: Pass}); err != nil {
		t.Fatal(err)
	}
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}

	rows = readCSV(t, filepath.Join(dir, FileName(day1)))
	if len(rows) != 3 || rows[0][1] != "path" || rows[2][1] != vs[1].Path || rows[2][5] != Fail || rows[1][8] != "120.000" {
		t.Errorf("day 1 rows = %q", rows)
	}
	rows = readCSV(t, filepath.Join(dir, FileName(day2)))
	if len(rows) != 3 || rows[0][0] != "scored_at" || rows[1][1] != "/in/c.png" || rows[2][1] != "/in/d.png" {
		t.Errorf("day 2 rows = %q", rows)
	}
}

func TestDailyCSVAfterCrash(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.Local)
	path := filepath.Join(dir, FileName(at))
	// A crash in the middle of the header, then one in the middle of a row.
	if err := os.WriteFile(path, []byte("scored_at,pa"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := OpenDailyCSV(dir)
	if err := d.Append(Verdict{Path: "a.png", ScoredAt: at, Decision: Pass}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(at.Format(time.RFC3339Nano) + ",b.pn")
	f.Close()
	d, _ = OpenDailyCSV(dir)
	if err := d.Append(Verdict{Path: "c.png", ScoredAt: at, Decision: Fail}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	rows := readCSV(t, path)
	if len(rows) != 3 || rows[0][0] != "scored_at" || rows[1][1] != "a.png" || rows[2][1] != "c.png" {
		t.Errorf("rows after two crashes = %q", rows)
	}
}

func TestDailyCSVUnwritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := OpenDailyCSV(filepath.Join(file, "sub")); err == nil {
		t.Fatal("OpenDailyCSV under a regular file succeeded")
	}
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		score, thr float64
		want       string
	}{{0.4, 0.5, Pass}, {0.5, 0.5, Fail}, {0.6, 0.5, Fail}} {
		if got := Decide(tc.score, tc.thr); got != tc.want {
			t.Errorf("Decide(%v, %v) = %s, want %s", tc.score, tc.thr, got, tc.want)
		}
	}
}
