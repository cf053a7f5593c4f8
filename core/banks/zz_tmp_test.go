package banks

import (
	"context"
	"encoding/binary"
	"math/rand"
	"os"
	"testing"
	"time"

	"github.com/dmad/workstation/core/mat"
)

func loadProj(tb testing.TB) *mat.Matrix {
	f, err := os.Open("/tmp/proj128.bin")
	if err != nil {
		tb.Skip(err)
	}
	defer f.Close()
	var n int32
	binary.Read(f, binary.LittleEndian, &n)
	m := mat.New(int(n), 128)
	binary.Read(f, binary.LittleEndian, m.RawData())
	return m
}

func TestTmpSelect(t *testing.T) {
	pts := loadProj(t)
	n := pts.Rows() / 50
	var st selectStats
	start := time.Now()
	cpu0 := cpuSeconds()
	idx, err := selectGreedy(context.Background(), pts, n, rand.New(rand.NewSource(2)), 10, 2, true, func(int) {}, &st)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d selected in %v (cpu %.1f s); visited/sel %.0f tested/sel %.0f full/sel %.0f initial/sel %.0f; last %v hash %x",
		len(idx), time.Since(start), cpuSeconds()-cpu0, float64(st.visited)/float64(n), float64(st.evaluated)/float64(n), float64(st.full)/float64(n), float64(st.initial)/float64(n), idx[len(idx)-5:], hashIdx(idx))
}

func hashIdx(idx []int) uint64 {
	h := uint64(1469598103934665603)
	for _, i := range idx {
		h = (h ^ uint64(i)) * 1099511628211
	}
	return h
}
