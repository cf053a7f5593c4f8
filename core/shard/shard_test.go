package shard

import (
	"fmt"
	"path/filepath"
	"testing"
)

func names(n int) []string {
	out := make([]string, n)
	cats := []string{"bottle", "magnetic_tile", "screw"}
	for i := range out {
		out[i] = fmt.Sprintf("%s/test/%s/%05d.png", cats[i%3], []string{"good", "crack"}[i%2], i)
	}
	return out
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
		ok   bool
	}{
		{"0/4", Spec{0, 4}, true}, {"3/4", Spec{3, 4}, true}, {" 0 / 1 ", Spec{0, 1}, true},
		{"4/4", Spec{}, false}, {"-1/4", Spec{}, false}, {"0/0", Spec{}, false}, {"1", Spec{}, false}, {"a/b", Spec{}, false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && got.String() != fmt.Sprintf("%d/%d", tc.want.Index, tc.want.Count) {
			t.Errorf("String = %s", got)
		}
	}
}

// TestOfIsPinned pins the assignment: workers built from different
// versions of the workstation must agree on it.
func TestOfIsPinned(t *testing.T) {
	got := []int{Of("bottle/test/good/000.png", 4), Of("bottle/test/broken_large/012.png", 4),
		Of("a.png", 7), Of("magnetic_tile/MT_Blowhole/Imgs/exp1_num_4.jpg", 16)}
	want := []int{1, 0, 4, 6} // recorded from the first release of this function
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("assignments %v, pinned %v: changing the hash reshuffles running jobs", got, want)
	}
	// Separators and "./" do not matter.
	if Of(filepath.FromSlash("bottle/test/good/000.png"), 4) != Of("./bottle/test/good/000.png", 4) {
		t.Error("the same file under another spelling landed elsewhere")
	}
}

func TestEveryFileInExactlyOneShardAndBalanced(t *testing.T) {
	files := names(20000)
	for _, n := range []int{1, 2, 3, 4, 7, 16} {
		counts := make([]int, n)
		for _, f := range files {
			owners := 0
			for i := 0; i < n; i++ {
				if (Spec{i, n}).Owns(f) {
					owners++
					counts[i]++
				}
			}
			if owners != 1 {
				t.Fatalf("n=%d: %s owned by %d shards", n, f, owners)
			}
		}
		mean := float64(len(files)) / float64(n)
		for i, c := range counts {
			if d := float64(c)/mean - 1; d > 0.1 || d < -0.1 {
				t.Errorf("n=%d: shard %d has %d files, mean %.0f (off by more than 10%%)", n, i, c, mean)
			}
		}
	}
}

func TestStableUnderAddedFilesAndMinimalMoves(t *testing.T) {
	old := names(5000)
	before := map[string]int{}
	for _, f := range old {
		before[f] = Of(f, 5)
	}
	for _, f := range append(names(9000)[5000:], old...) { // more files, another order
		if b, ok := before[f]; ok && Of(f, 5) != b {
			t.Fatalf("%s moved from shard %d to %d when files were added", f, b, Of(f, 5))
		}
	}
	// From 5 to 6 workers: a file moves only to the new shard, and about
	// 1/6 of them do.
	moved := 0
	for _, f := range old {
		if now := Of(f, 6); now != before[f] {
			if now != 5 {
				t.Fatalf("%s moved from %d to %d, not to the new shard", f, before[f], now)
			}
			moved++
		}
	}
	if frac := float64(moved) / float64(len(old)); frac < 0.12 || frac > 0.22 {
		t.Errorf("%.1f%% of the files moved going from 5 to 6 shards, want about 16.7%%", 100*frac)
	}
}

func TestSelect(t *testing.T) {
	root := filepath.FromSlash("/data/in")
	var paths []string
	for _, n := range names(300) {
		paths = append(paths, filepath.Join(root, filepath.FromSlash(n)))
	}
	seen := map[string]int{}
	for i := 0; i < 3; i++ {
		part, err := Select(root, paths, Spec{i, 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range part {
			seen[p]++
		}
		// The same files when the input is mounted elsewhere.
		other := filepath.FromSlash("/mnt/x")
		var moved []string
		for _, p := range paths {
			rel, _ := filepath.Rel(root, p)
			moved = append(moved, filepath.Join(other, rel))
		}
		part2, _ := Select(other, moved, Spec{i, 3})
		if len(part2) != len(part) {
			t.Errorf("shard %d: %d files under one mount point, %d under another", i, len(part), len(part2))
		}
	}
	if len(seen) != len(paths) {
		t.Errorf("%d of %d files selected by some shard", len(seen), len(paths))
	}
	if _, err := Select(root, []string{filepath.FromSlash("/elsewhere/a.png")}, Spec{0, 2}); err == nil {
		t.Error("Select accepted a file outside the root")
	}
	if _, err := Select(root, paths, Spec{2, 2}); err == nil {
		t.Error("Select accepted shard 2/2")
	}
}

func TestFilterItems(t *testing.T) {
	type sample struct {
		Path string
		N    int
	}
	root := filepath.FromSlash("/data/in")
	var items []sample
	for i, n := range names(100) {
		items = append(items, sample{filepath.Join(root, filepath.FromSlash(n)), i})
	}
	total := 0
	for i := 0; i < 4; i++ {
		got, err := Filter(root, items, func(s sample) string { return s.Path }, Spec{i, 4})
		if err != nil {
			t.Fatal(err)
		}
		for k, s := range got {
			rel, _ := filepath.Rel(root, s.Path)
			if Of(rel, 4) != i || (k > 0 && got[k-1].N >= s.N) {
				t.Errorf("shard %d got %+v (out of order or not its own)", i, s)
			}
		}
		total += len(got)
	}
	if total != len(items) {
		t.Errorf("%d of %d items in some shard", total, len(items))
	}
}
