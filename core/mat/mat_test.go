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
	if s := m.Slice(1, 3); s.Rows != 2 || !slices.Equal(s.Data, []float32{3, 4, 5, 6}) {
		t.Fatalf("slice %v", s)
	}
	if g := m.Gather([]int{2, 0}); !slices.Equal(g.Data, []float32{5, 6, 1, 2}) {
		t.Fatalf("gather %v", g.Data)
	}
	c := m.Clone()
	c.Data[0] = 99
	if m.Data[0] != 1 {
		t.Fatal("Clone shares memory")
	}
	a, err := Append(m, nil, &Matrix{}, m.Slice(0, 1))
	if err != nil || a.Rows != 4 || !slices.Equal(a.Row(3), []float32{1, 2}) {
		t.Fatalf("append: %v %v", a, err)
	}
	if _, err := Append(m, New(1, 3)); err == nil {
		t.Fatal("column mismatch accepted")
	}
}

func TestCheckAndAppendRow(t *testing.T) {
	m := WithCapacity(2, 3)
	m.AppendRow([]float32{1, 2, 3})
	m.AppendRows(&Matrix{Rows: 1, Cols: 3, Data: []float32{4, 5, 6}})
	if m.Rows != 2 || m.Check("m") != nil || m.Row(1)[2] != 6 {
		t.Fatalf("appended matrix %+v", m)
	}
	bad := &Matrix{Rows: 2, Cols: 3, Data: make([]float32, 5)}
	if err := bad.Check("bank"); !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), "bank") {
		t.Errorf("Check of a short matrix: %v", err)
	}
	var none *Matrix
	if err := none.Check("bank"); !errors.Is(err, ErrShape) {
		t.Errorf("Check of nil: %v", err)
	}
	defer func() {
		if r := recover(); r != ErrShape {
			t.Errorf("AppendRow of a short row panicked with %v, want ErrShape", r)
		}
	}()
	m.AppendRow([]float32{1})
}
