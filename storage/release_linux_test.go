package storage

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/mat"
)

// rssFileKB reads the process's resident file-backed memory (RssFile) from
// /proc/self/status.
func rssFileKB(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("RssFile %q: %v", v, err)
			}
			return n
		}
	}
	t.Skip("no RssFile line in /proc/self/status")
	return 0
}

// TestFeaturesReleaseMappedPages reads 64 MB of stored features and checks
// that the mapped file's pages they came from do not stay in the process's
// resident set (a training streams gigabytes of them), and that reading
// them again, after the pages were released, gives the same values.
func TestFeaturesReleaseMappedPages(t *testing.T) {
	p := newProject(t)
	const n, rows, cols = 32, 784, 640 // 2 MB each
	r := rand.New(rand.NewPCG(3, 4))
	var entries []FeatureEntry
	for id := uint64(1); id <= n; id++ {
		m := mat.New(rows, cols)
		for i := range m.RawData() {
			m.RawData()[i] = float32(r.NormFloat64())
		}
		entries = append(entries, FeatureEntry{ImageID: id, Features: m})
	}
	if err := p.PutFeaturesBatch(context.Background(), "enc", entries); err != nil {
		t.Fatal(err)
	}
	before := rssFileKB(t)
	for _, e := range entries {
		got, err := p.Features("enc", e.ImageID)
		if err != nil {
			t.Fatal(err)
		}
		if got.RawData()[rows*cols-1] != e.Features.RawData()[rows*cols-1] {
			t.Fatalf("image %d: last value differs", e.ImageID)
		}
	}
	grown := rssFileKB(t) - before
	const readKB = n * rows * cols * 4 / 1024
	if grown > readKB/4 {
		t.Errorf("file-backed resident memory grew by %d kB while reading %d kB of features: mapped pages not released", grown, readKB)
	}
	for _, e := range entries[:4] { // again, from released pages
		got, err := p.Features("enc", e.ImageID)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range got.RawData() {
			if v != e.Features.RawData()[i] {
				t.Fatalf("image %d value %d: %v after the pages were released, want %v", e.ImageID, i, v, e.Features.RawData()[i])
			}
		}
	}
}
