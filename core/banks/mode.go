package banks

import (
	"context"
	"fmt"
	"strings"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
)

// SearchMode chooses how nearest neighbours are found.
type SearchMode int

const (
	// SearchExact compares every query with every bank row ([Searcher]).
	SearchExact SearchMode = iota
	// SearchFast is the cascade of [CascadeSearcher]: candidates from a
	// low-dimensional projection, re-ranked exactly in full dimension.
	SearchFast
)

// String returns the mode's flag spelling.
func (m SearchMode) String() string {
	switch m {
	case SearchExact:
		return "exact"
	case SearchFast:
		return "fast"
	}
	return fmt.Sprintf("SearchMode(%d)", int(m))
}

// ParseSearchMode parses a --search flag value: "exact" or "fast"; empty
// means exact.
func ParseSearchMode(s string) (SearchMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "exact":
		return SearchExact, nil
	case "fast":
		return SearchFast, nil
	}
	return SearchExact, fmt.Errorf("search mode %q: want exact or fast", s)
}

// NeighbourSearcher finds L2 nearest neighbours of query rows in a bank.
// [Searcher] (exact) and [CascadeSearcher] (fast) implement it.
type NeighbourSearcher interface {
	// Search returns each query row's k nearest bank rows, row-major
	// q.Rows()×k, nearest first: L2 distances and bank row indices.
	Search(ctx context.Context, q *mat.Matrix, k int) (dist []float32, idx []int64, err error)
	// SearchExcluding is Search skipping bank rows whose source id equals
	// the query's; slots with no eligible row get +Inf and index −1.
	SearchExcluding(ctx context.Context, q *mat.Matrix, qSource []int32, k int) (dist []float32, idx []int64, err error)
	// Bank returns the searched bank.
	Bank() *mat.Matrix
	// Source returns the bank rows' source ids (nil when none).
	Source() []int32
	// Close frees the searcher's sessions.
	Close() error
}

// NewNeighbourSearcher returns the searcher of opts.Mode over bank.
func NewNeighbourSearcher(rt *ort.Runtime, bank *mat.Matrix, opts SearchOptions) (NeighbourSearcher, error) {
	switch opts.Mode {
	case SearchExact:
		return NewSearcher(rt, bank, opts)
	case SearchFast:
		return NewCascadeSearcher(rt, bank, opts)
	}
	return nil, fmt.Errorf("searcher: unknown search mode %v", opts.Mode)
}
