// Package review holds the decision rules a reviewer works with: a model
// version's thresholds (one global, optionally one per category), the
// verdict of a score under them, confusion counts, and the comparison of two
// model versions' verdicts on the same images. It is pure: the project
// (core/project), the GUI and the CLI all decide with it, so they agree.
package review

import (
	"maps"
	"math"
	"os"
	"os/user"
	"slices"
	"sort"
)

// Verdicts.
const (
	Pass = "pass"
	Fail = "fail"
)

// Thresholds are a model version's decision thresholds: an image fails
// when its score is at or above the threshold of its category.
type Thresholds struct {
	// Global applies to categories without their own threshold.
	Global float64 `json:"global"`
	// PerCategory holds the categories' own thresholds.
	PerCategory map[string]float64 `json:"per_category,omitempty"`
}

// For is the threshold of category: its own when set, Global otherwise.
func (t Thresholds) For(category string) float64 {
	if v, ok := t.PerCategory[category]; ok {
		return v
	}
	return t.Global
}

// Verdict is Fail when score ≥ the threshold of category, else Pass.
func (t Thresholds) Verdict(category string, score float64) string {
	return Decide(score, t.For(category))
}

// Clone returns a deep copy.
func (t Thresholds) Clone() Thresholds {
	t.PerCategory = maps.Clone(t.PerCategory)
	return t
}

// Set sets the threshold of category; "" sets Global and every category's
// own threshold to v (one value for every category).
func (t *Thresholds) Set(category string, v float64) {
	if category == "" {
		t.Global = v
		for c := range t.PerCategory {
			t.PerCategory[c] = v
		}
		return
	}
	if t.PerCategory == nil {
		t.PerCategory = map[string]float64{}
	}
	t.PerCategory[category] = v
}

// Equal reports whether both hold the same values.
func (t Thresholds) Equal(o Thresholds) bool {
	return t.Global == o.Global && maps.Equal(t.PerCategory, o.PerCategory)
}

// Decide is the verdict of score at threshold.
func Decide(score, threshold float64) string {
	if score >= threshold {
		return Fail
	}
	return Pass
}

// Record keys of thresholds in a stored model record (storage.ModelRecord.Thresholds).
const (
	recordGlobal   = "image"
	recordCategory = "image/"
)

// FromRecord reads thresholds from a model record's map ("image" and
// "image/<category>"); ok is false when it holds no global threshold.
func FromRecord(m map[string]float64) (t Thresholds, ok bool) {
	g, ok := m[recordGlobal]
	if !ok {
		return t, false
	}
	t.Global = g
	for k, v := range m {
		if len(k) > len(recordCategory) && k[:len(recordCategory)] == recordCategory {
			if t.PerCategory == nil {
				t.PerCategory = map[string]float64{}
			}
			t.PerCategory[k[len(recordCategory):]] = v
		}
	}
	return t, true
}

// Record is the model record's map of t.
func (t Thresholds) Record() map[string]float64 {
	m := map[string]float64{recordGlobal: t.Global}
	for c, v := range t.PerCategory {
		m[recordCategory+c] = v
	}
	return m
}

// Item is one scored image.
type Item struct {
	// Key identifies the image across runs (project id key or path).
	Key      string
	Path     string
	Category string
	// Label is "good", "defect" or "" (unknown).
	Label string
	Score float64
}

// Counts are confusion counts at a threshold; the error counts cover
// labelled images only.
type Counts struct {
	Images, Fail, Pass int
	// FalseAlarms are good images that fail, Misses defects that pass.
	FalseAlarms, Misses int
	// Labelled is the number of images with a known label.
	Labelled int
}

// Count adds one image's verdict to c.
func (c *Counts) Count(label, verdict string) {
	c.Images++
	if verdict == Fail {
		c.Fail++
	} else {
		c.Pass++
	}
	switch label {
	case "good":
		c.Labelled++
		if verdict == Fail {
			c.FalseAlarms++
		}
	case "defect":
		c.Labelled++
		if verdict == Pass {
			c.Misses++
		}
	}
}

// Tally counts items per category and over all ("" key) at t.
func Tally(items []Item, t Thresholds) map[string]Counts {
	out := map[string]Counts{}
	for _, it := range items {
		v := t.Verdict(it.Category, it.Score)
		for _, k := range []string{"", it.Category} {
			c := out[k]
			c.Count(it.Label, v)
			out[k] = c
		}
	}
	return out
}

// Change is an image whose verdict differs between two versions.
type Change struct {
	Key, Path, Category, Label string
	ScoreA, ScoreB             float64
	ThresholdA, ThresholdB     float64
	VerdictA, VerdictB         string
	// Better is true when B's verdict agrees with the label and A's does
	// not, false when the reverse or the label is unknown.
	Better bool
	// Worse is true when A agreed with the label and B does not.
	Worse bool
}

// Comparison compares two versions' verdicts on the images both scored.
type Comparison struct {
	// Common is the number of images both scored; OnlyA and OnlyB those
	// only one did (not compared).
	Common, OnlyA, OnlyB int
	// CountsA and CountsB are per category ("" for all) over the common images.
	CountsA, CountsB map[string]Counts
	// Changed are the images whose verdict differs, by key.
	Changed []Change
}

// Compare compares items scored by version A (at ta) with items scored by
// version B (at tb), matching them by Key.
func Compare(a, b []Item, ta, tb Thresholds) Comparison {
	byKey := make(map[string]Item, len(b))
	for _, it := range b {
		byKey[it.Key] = it
	}
	var cmp Comparison
	var ca, cb []Item
	seen := map[string]bool{}
	for _, x := range a {
		y, ok := byKey[x.Key]
		if !ok {
			cmp.OnlyA++
			continue
		}
		seen[x.Key] = true
		ca, cb = append(ca, x), append(cb, y)
		va, vb := ta.Verdict(x.Category, x.Score), tb.Verdict(y.Category, y.Score)
		if va == vb {
			continue
		}
		right := func(v string) bool {
			return (x.Label == "good" && v == Pass) || (x.Label == "defect" && v == Fail)
		}
		lab := x.Label == "good" || x.Label == "defect"
		cmp.Changed = append(cmp.Changed, Change{Key: x.Key, Path: x.Path, Category: x.Category, Label: x.Label,
			ScoreA: x.Score, ScoreB: y.Score, ThresholdA: ta.For(x.Category), ThresholdB: tb.For(y.Category),
			VerdictA: va, VerdictB: vb, Better: lab && right(vb) && !right(va), Worse: lab && right(va) && !right(vb)})
	}
	cmp.Common = len(ca)
	cmp.OnlyB = len(b) - len(seen)
	cmp.CountsA, cmp.CountsB = Tally(ca, ta), Tally(cb, tb)
	sort.Slice(cmp.Changed, func(i, j int) bool { return cmp.Changed[i].Key < cmp.Changed[j].Key })
	return cmp
}

// Categories lists the categories of a tally, sorted, without "".
func Categories(c map[string]Counts) []string {
	var out []string
	for k := range c {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Histogram bins good and defect scores (and unlabelled ones, counted with
// neither) into n equal bins over [lo, hi]; scores outside are clamped into
// the end bins.
func Histogram(items []Item, lo, hi float64, n int) (good, defect, unknown []int) {
	good, defect, unknown = make([]int, n), make([]int, n), make([]int, n)
	if n <= 0 || !(hi > lo) {
		return good, defect, unknown
	}
	for _, it := range items {
		i := int(math.Floor((it.Score - lo) / (hi - lo) * float64(n)))
		i = max(0, min(n-1, i))
		switch it.Label {
		case "good":
			good[i]++
		case "defect":
			defect[i]++
		default:
			unknown[i]++
		}
	}
	return good, defect, unknown
}

// CurrentUser is who runs the workstation, as reviews and reports name
// them: the OS user name, else $USER, $USERNAME or $LOGNAME, else
// "unknown".
func CurrentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, k := range []string{"USER", "USERNAME", "LOGNAME"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return "unknown"
}
