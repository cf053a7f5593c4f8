package review

import "testing"

func TestThresholdsForAndRecord(t *testing.T) {
	th := Thresholds{Global: 0.5, PerCategory: map[string]float64{"bottle": 0.66}}
	for _, tc := range []struct {
		cat   string
		score float64
		want  string
	}{
		{"bottle", 0.65, Pass}, {"bottle", 0.66, Fail}, {"tile", 0.5, Fail}, {"tile", 0.49, Pass},
	} {
		if got := th.Verdict(tc.cat, tc.score); got != tc.want {
			t.Errorf("%s %.2f: %s, want %s", tc.cat, tc.score, got, tc.want)
		}
	}
	back, ok := FromRecord(th.Record())
	if !ok || !back.Equal(th) {
		t.Errorf("record round trip: %+v", back)
	}
	if _, ok := FromRecord(map[string]float64{"image/x": 1}); ok {
		t.Error("a record without a global threshold read as complete")
	}
	c := th.Clone()
	c.Set("", 0.7)
	if c.For("bottle") != 0.7 || c.For("tile") != 0.7 || th.For("bottle") != 0.66 {
		t.Errorf("Set all: %+v, original %+v", c, th)
	}
	c.Set("tile", 0.8)
	if c.For("tile") != 0.8 || c.Global != 0.7 {
		t.Errorf("Set one: %+v", c)
	}
}

func TestCompareAndTally(t *testing.T) {
	a := []Item{
		{Key: "1", Category: "c", Label: "good", Score: 0.4},
		{Key: "2", Category: "c", Label: "defect", Score: 0.45}, // A misses, B catches
		{Key: "3", Category: "c", Label: "good", Score: 0.3},    // A passes, B false alarm
		{Key: "4", Category: "c", Label: "defect", Score: 0.9},
		{Key: "only-a", Category: "c", Score: 0.1},
	}
	b := []Item{
		{Key: "1", Category: "c", Label: "good", Score: 0.41},
		{Key: "2", Category: "c", Label: "defect", Score: 0.7},
		{Key: "3", Category: "c", Label: "good", Score: 0.65},
		{Key: "4", Category: "c", Label: "defect", Score: 0.95},
		{Key: "only-b", Category: "c", Score: 0.1},
	}
	ta, tb := Thresholds{Global: 0.5}, Thresholds{Global: 0.6}
	cmp := Compare(a, b, ta, tb)
	if cmp.Common != 4 || cmp.OnlyA != 1 || cmp.OnlyB != 1 {
		t.Fatalf("common %d, only %d/%d", cmp.Common, cmp.OnlyA, cmp.OnlyB)
	}
	if len(cmp.Changed) != 2 || cmp.Changed[0].Key != "2" || !cmp.Changed[0].Better || cmp.Changed[1].Key != "3" || !cmp.Changed[1].Worse {
		t.Errorf("changed %+v", cmp.Changed)
	}
	want := Counts{Images: 4, Fail: 1, Pass: 3, Misses: 1, Labelled: 4}
	if got := cmp.CountsA[""]; got != want {
		t.Errorf("counts A %+v, want %+v", got, want)
	}
	want = Counts{Images: 4, Fail: 3, Pass: 1, FalseAlarms: 1, Labelled: 4}
	if got := cmp.CountsB["c"]; got != want {
		t.Errorf("counts B %+v, want %+v", got, want)
	}
}

func TestHistogram(t *testing.T) {
	items := []Item{{Label: "good", Score: 0}, {Label: "good", Score: 0.24}, {Label: "defect", Score: 0.99},
		{Label: "defect", Score: 5}, {Score: 0.5}}
	g, d, u := Histogram(items, 0, 1, 4)
	if g[0] != 2 || d[3] != 2 || u[2] != 1 {
		t.Errorf("good %v defect %v unknown %v", g, d, u)
	}
}
