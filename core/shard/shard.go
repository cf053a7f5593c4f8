// Package shard splits an inspection's input among n independent workers
// and merges their outputs back into one report.
//
// A file's shard depends only on its path relative to the input root and
// on n: every worker computes the same split without talking to the
// others, the split is the same on every run and platform, and adding or
// removing files moves no other file to another shard. Going from n to n+1
// shards moves only about 1/(n+1) of the files (jump consistent hashing).
package shard

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Spec is shard Index of Count, Index in [0, Count).
type Spec struct {
	Index, Count int
}

// Parse reads "i/n", e.g. "0/4".
func Parse(s string) (Spec, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil {
		return Spec{}, fmt.Errorf("shard %q: want INDEX/COUNT, e.g. 0/4", s)
	}
	sp := Spec{Index: i, Count: n}
	if err := sp.Validate(); err != nil {
		return Spec{}, err
	}
	return sp, nil
}

// Validate checks 0 ≤ Index < Count.
func (s Spec) Validate() error {
	if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("shard %d/%d: want 0 ≤ index < count", s.Index, s.Count)
	}
	return nil
}

// String is "i/n".
func (s Spec) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Of is the shard, in [0, n), of the file at rel, its path relative to the
// input root (either separator). n < 1 counts as 1.
func Of(rel string, n int) int {
	if n <= 1 {
		return 0
	}
	key := filepath.ToSlash(filepath.Clean(rel))
	key = strings.TrimPrefix(key, "./")
	sum := sha256.Sum256([]byte(key))
	return jump(binary.BigEndian.Uint64(sum[:8]), n)
}

// jump is Lamping and Veach's jump consistent hash ("A Fast, Minimal
// Memory, Consistent Hash Algorithm", 2014).
func jump(key uint64, n int) int {
	var b, j int64 = -1, 0
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// Owns reports whether the file at rel (relative to the input root)
// belongs to this shard.
func (s Spec) Owns(rel string) bool { return Of(rel, s.Count) == s.Index }

// Select returns the paths that belong to shard s, keeping their order;
// each path is hashed relative to root, so workers that mount the input at
// different places agree.
func Select(root string, paths []string, s Spec) ([]string, error) {
	return Filter(root, paths, func(p string) string { return p }, s)
}

// Filter is Select for any items with a path, e.g. dataset samples:
//
//	mine, err := shard.Filter(input, samples, func(s dataset.Sample) string { return s.Path }, spec)
func Filter[T any](root string, items []T, path func(T) string, s Spec) ([]T, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var out []T
	for _, it := range items {
		p := path(it)
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("shard: %s is not under the input root %s", p, root)
		}
		if s.Owns(rel) {
			out = append(out, it)
		}
	}
	return out, nil
}
