// Package mat holds the dense float32 matrix that the core packages pass
// between each other: patch features, memory banks, knowledge residuals.
package mat

import "fmt"

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

// FromData wraps data (not copied) as a rows×cols matrix.
func FromData(rows, cols int, data []float32) (*Matrix, error) {
	if len(data) != rows*cols {
		return nil, fmt.Errorf("matrix %d×%d needs %d values, got %d", rows, cols, rows*cols, len(data))
	}
	return &Matrix{Rows: rows, Cols: cols, Data: data}, nil
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
