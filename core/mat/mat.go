// Package mat holds the dense float32 matrix that the core packages pass
// between each other: patch features, memory banks, knowledge residuals.
package mat

import (
	"errors"
	"fmt"
)

// ErrShape is wrapped by every error about a matrix whose values do not
// fill its Rows×Cols, and is the value AppendRow panics with.
var ErrShape = errors.New("mat: dimension mismatch")

// Matrix is a dense row-major float32 matrix: row i is
// Data[i*Cols : (i+1)*Cols]. Patch features are one row per patch.
type Matrix struct {
	Rows, Cols int
	Data       []float32
}

// New allocates a zero Rows×Cols matrix.
func New(rows, cols int) *Matrix {
	return &Matrix{Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}
}

// FromData wraps data (not copied) as a rows×cols matrix; data of another
// length is an error wrapping ErrShape.
func FromData(rows, cols int, data []float32) (*Matrix, error) {
	if len(data) != rows*cols {
		return nil, fmt.Errorf("matrix %d×%d needs %d values, got %d: %w", rows, cols, rows*cols, len(data), ErrShape)
	}
	return &Matrix{Rows: rows, Cols: cols, Data: data}, nil
}

// WithCapacity returns an empty matrix of cols columns with room for rows
// rows; grow it with AppendRow or AppendRows.
func WithCapacity(rows, cols int) *Matrix {
	return &Matrix{Cols: cols, Data: make([]float32, 0, rows*cols)}
}

// Check reports whether m holds exactly Rows×Cols values (an error
// wrapping ErrShape when not, naming what, e.g. "normal bank").
func (m *Matrix) Check(what string) error {
	switch {
	case m == nil:
		return fmt.Errorf("%s: no matrix: %w", what, ErrShape)
	case m.Rows < 0 || m.Cols < 0 || len(m.Data) != m.Rows*m.Cols:
		return fmt.Errorf("%s: matrix %d×%d holds %d values: %w", what, m.Rows, m.Cols, len(m.Data), ErrShape)
	}
	return nil
}

// AppendRow adds one row; a row of another length than Cols panics with
// ErrShape (a programming error, as in gonum).
func (m *Matrix) AppendRow(row []float32) {
	if len(row) != m.Cols {
		panic(ErrShape)
	}
	m.Data = append(m.Data, row...)
	m.Rows++
}

// AppendRows adds the rows of o, which must have m's columns (else it
// panics with ErrShape).
func (m *Matrix) AppendRows(o *Matrix) {
	if o.Cols != m.Cols || len(o.Data) != o.Rows*o.Cols {
		panic(ErrShape)
	}
	m.Data = append(m.Data, o.Data...)
	m.Rows += o.Rows
}

// Row returns row i, sharing memory with m.
func (m *Matrix) Row(i int) []float32 { return m.Data[i*m.Cols : (i+1)*m.Cols] }

// Slice returns rows [from, to), sharing memory with m.
func (m *Matrix) Slice(from, to int) *Matrix {
	return &Matrix{Rows: to - from, Cols: m.Cols, Data: m.Data[from*m.Cols : to*m.Cols]}
}

// Gather returns a new matrix made of the given rows of m, in order.
func (m *Matrix) Gather(rows []int) *Matrix {
	out := New(len(rows), m.Cols)
	for i, r := range rows {
		copy(out.Row(i), m.Row(r))
	}
	return out
}

// Append returns the rows of all ms stacked; every matrix must have the same
// number of columns. Empty or nil matrices are skipped.
func Append(ms ...*Matrix) (*Matrix, error) {
	cols, rows := -1, 0
	for _, m := range ms {
		if m == nil || m.Rows == 0 {
			continue
		}
		if cols >= 0 && m.Cols != cols {
			return nil, fmt.Errorf("append matrices: %d columns vs %d", m.Cols, cols)
		}
		cols = m.Cols
		rows += m.Rows
	}
	if cols < 0 {
		return &Matrix{}, nil
	}
	out := &Matrix{Rows: rows, Cols: cols, Data: make([]float32, 0, rows*cols)}
	for _, m := range ms {
		if m != nil {
			out.Data = append(out.Data, m.Data...)
		}
	}
	return out, nil
}

// Clone returns a deep copy.
func (m *Matrix) Clone() *Matrix {
	return &Matrix{Rows: m.Rows, Cols: m.Cols, Data: append([]float32(nil), m.Data...)}
}
