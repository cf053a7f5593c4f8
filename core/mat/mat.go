// Package mat holds the dense float32 matrix that the core packages pass
// between each other: patch features, memory banks, knowledge residuals.
package mat

import (
	"errors"
	"fmt"
)

// ErrShape is wrapped by every error about values that do not fill a
// rows×cols matrix, and is the value AppendRow panics with.
var ErrShape = errors.New("mat: dimension mismatch")

// Matrix is a dense row-major float32 matrix: row i is
// RawData()[i*c : (i+1)*c] for a matrix of c columns. Patch features are one
// row per patch.
//
// The storage is unexported, as in gonum's mat.Dense, so that every matrix
// holds exactly rows×cols values by construction: build one with New,
// FromData, WithCapacity (grown by AppendRow and AppendRows), Slice, Gather,
// Append or Clone. The zero value is an empty 0×0 matrix.
type Matrix struct {
	rows, cols int
	data       []float32
}

// New allocates a zero rows×cols matrix.
func New(rows, cols int) *Matrix {
	return &Matrix{rows: rows, cols: cols, data: make([]float32, rows*cols)}
}

// FromData wraps data (not copied) as a rows×cols matrix; negative sizes or
// data of another length than rows×cols are an error wrapping ErrShape.
func FromData(rows, cols int, data []float32) (*Matrix, error) {
	if rows < 0 || cols < 0 || len(data) != rows*cols {
		return nil, fmt.Errorf("matrix %d×%d needs %d values, got %d: %w", rows, cols, rows*cols, len(data), ErrShape)
	}
	return &Matrix{rows: rows, cols: cols, data: data}, nil
}

// WithCapacity returns an empty matrix of cols columns with room for rows
// rows; grow it with AppendRow or AppendRows.
func WithCapacity(rows, cols int) *Matrix {
	return &Matrix{cols: cols, data: make([]float32, 0, rows*cols)}
}

// Dims returns the number of rows and columns.
func (m *Matrix) Dims() (r, c int) { return m.rows, m.cols }

// Rows returns the number of rows.
func (m *Matrix) Rows() int { return m.rows }

// Cols returns the number of columns.
func (m *Matrix) Cols() int { return m.cols }

// RawData returns the row-major values, Rows()×Cols() of them, sharing
// memory with m (like gonum's RawMatrix). It is the one way to the storage,
// for what needs the whole block at once: ONNX Runtime tensors, codecs and
// bulk arithmetic. Writing its elements writes m; its length must not be
// changed.
func (m *Matrix) RawData() []float32 { return m.data }

// AppendRow adds one row; a row of another length than Cols panics with
// ErrShape (a programming error, as in gonum).
func (m *Matrix) AppendRow(row []float32) {
	if len(row) != m.cols {
		panic(ErrShape)
	}
	m.data = append(m.data, row...)
	m.rows++
}

// AppendRows adds the rows of o, which must have m's columns (else it
// panics with ErrShape).
func (m *Matrix) AppendRows(o *Matrix) {
	if o.cols != m.cols {
		panic(ErrShape)
	}
	m.data = append(m.data, o.data...)
	m.rows += o.rows
}

// Row returns row i, sharing memory with m.
func (m *Matrix) Row(i int) []float32 { return m.data[i*m.cols : (i+1)*m.cols] }

// Slice returns rows [from, to), sharing memory with m.
func (m *Matrix) Slice(from, to int) *Matrix {
	return &Matrix{rows: to - from, cols: m.cols, data: m.data[from*m.cols : to*m.cols]}
}

// Gather returns a new matrix made of the given rows of m, in order.
func (m *Matrix) Gather(rows []int) *Matrix {
	out := New(len(rows), m.cols)
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
		if m == nil || m.rows == 0 {
			continue
		}
		if cols >= 0 && m.cols != cols {
			return nil, fmt.Errorf("append matrices: %d columns vs %d", m.cols, cols)
		}
		cols = m.cols
		rows += m.rows
	}
	if cols < 0 {
		return &Matrix{}, nil
	}
	out := &Matrix{rows: rows, cols: cols, data: make([]float32, 0, rows*cols)}
	for _, m := range ms {
		if m != nil {
			out.data = append(out.data, m.data...)
		}
	}
	return out, nil
}

// Clone returns a deep copy.
func (m *Matrix) Clone() *Matrix {
	return &Matrix{rows: m.rows, cols: m.cols, data: append([]float32(nil), m.data...)}
}
