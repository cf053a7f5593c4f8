package mat

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestMatrix(t *testing.T) {
	m, err := FromData(3, 2, []float32{1, 2, 3, 4, 5, 6})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromData(2, 2, []float32{1}); err == nil {
		t.Fatal("wrong length accepted")
	}
	if !slices.Equal(m.Row(1), []float32{3, 4}) {
		t.Fatalf("row 1 = %v", m.Row(1))
	}
	if s := m.Slice(1, 3); s.Rows() != 2 || !slices.Equal(s.RawData(), []float32{3, 4, 5, 6}) {
		t.Fatalf("slice %v", s)
	}
	if g := m.Gather([]int{2, 0}); !slices.Equal(g.RawData(), []float32{5, 6, 1, 2}) {
		t.Fatalf("gather %v", g.RawData())
	}
	c := m.Clone()
	c.RawData()[0] = 99
	if m.RawData()[0] != 1 {
		t.Fatal("Clone shares memory")
	}
	a, err := Append(m, nil, &Matrix{}, m.Slice(0, 1))
	if err != nil || a.Rows() != 4 || !slices.Equal(a.Row(3), []float32{1, 2}) {
		t.Fatalf("append: %v %v", a, err)
	}
	if _, err := Append(m, New(1, 3)); err == nil {
		t.Fatal("column mismatch accepted")
	}
}

func TestAppendRowAndShape(t *testing.T) {
	m := WithCapacity(2, 3)
	m.AppendRow([]float32{1, 2, 3})
	m.AppendRows(New(1, 3))
	m.Row(1)[2] = 6
	if r, c := m.Dims(); r != 2 || c != 3 || len(m.RawData()) != 6 || m.RawData()[5] != 6 {
		t.Fatalf("appended matrix %+v", m)
	}
	for _, tc := range []struct {
		name       string
		rows, cols int
		n          int
	}{
		{"short data", 2, 3, 5},
		{"long data", 2, 3, 7},
		{"negative rows", -1, -3, 3},
	} {
		_, err := FromData(tc.rows, tc.cols, make([]float32, tc.n))
		if !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), "values") {
			t.Errorf("%s: FromData error %v, want one wrapping ErrShape", tc.name, err)
		}
	}
	var zero Matrix
	if r, c := zero.Dims(); r != 0 || c != 0 || len(zero.RawData()) != 0 {
		t.Errorf("zero matrix is %d×%d with %d values", r, c, len(zero.RawData()))
	}
	for name, call := range map[string]func(){
		"AppendRow of a short row":    func() { m.AppendRow([]float32{1}) },
		"AppendRows of other columns": func() { m.AppendRows(New(1, 2)) },
	} {
		func() {
			defer func() {
				if r := recover(); r != ErrShape {
					t.Errorf("%s panicked with %v, want ErrShape", name, r)
				}
			}()
			call()
		}()
	}
}
