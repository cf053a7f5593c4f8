package inspection_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/internal/alloccheck"
)

func sampleMaps() inspection.PixelMaps {
	mask := make([]bool, 5*5)
	mask[0], mask[7], mask[24] = true, true, true
	return inspection.PixelMaps{GridH: 2, GridW: 3, Size: 5, Images: []inspection.ImageMap{
		{Path: "/in/bottle/test/good/000.png", Patches: []float32{0.1, 0.2, 0.3, 0.4, 0.5, -0.25}},
		{Path: "/in/bottle/test/broken_large/001.png", Patches: []float32{1, 2, 3, 4, 5, 6e-8}, Mask: mask},
	}}
}

func encode(t testing.TB, m inspection.PixelMaps) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := inspection.EncodeMaps(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestMapsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := sampleMaps()
	if err := inspection.WriteMaps(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := inspection.ReadMaps(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwrote\n%+v", got, want)
	}
	if _, err := inspection.ReadMaps(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadMaps of a folder without maps = %v, want os.ErrNotExist", err)
	}
}

func TestWriteMapsRefusesInconsistentMaps(t *testing.T) {
	for name, mod := range map[string]func(*inspection.PixelMaps){
		"short patches": func(m *inspection.PixelMaps) { m.Images[0].Patches = m.Images[0].Patches[:5] },
		"short mask":    func(m *inspection.PixelMaps) { m.Images[1].Mask = m.Images[1].Mask[:3] },
		"no grid":       func(m *inspection.PixelMaps) { m.GridH = 0 },
		"huge size":     func(m *inspection.PixelMaps) { m.Size = 1 << 20 },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			m := sampleMaps()
			mod(&m)
			if err := inspection.WriteMaps(dir, m); err == nil {
				t.Fatal("WriteMaps accepted inconsistent maps")
			}
			if _, err := os.Stat(filepath.Join(dir, inspection.MapsName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed write left %s behind (%v)", inspection.MapsName, err)
			}
		})
	}
}

func TestDecodeMapsRejectsDamage(t *testing.T) {
	good := encode(t, sampleMaps())
	le := binary.LittleEndian
	with := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "bad header"},
		{"other file", []byte("\x89PNG\r\n\x1a\n0000000000000000"), "bad header"},
		{"truncated", good[:len(good)-3], "truncated"},
		{"trailing bytes", append(append([]byte(nil), good...), 0), "after the last image"},
		{"a billion images", with(func(b []byte) []byte { le.PutUint32(b[20:], 1e9); return b }), "1000000000 images claimed"},
		{"huge grid", with(func(b []byte) []byte { le.PutUint32(b[8:], 1<<30); return b }), "out of range"},
		{"huge path", with(func(b []byte) []byte { le.PutUint32(b[24:], 1<<31); return b }), "path of"},
		{"NaN score", with(func(b []byte) []byte { le.PutUint32(b[28+28:], math.Float32bits(float32(math.NaN()))); return b }), "NaN"},
		{"bad mask flag", with(func(b []byte) []byte { b[28+28+24] = 7; return b }), "mask flag 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := inspection.DecodeMaps(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DecodeMaps = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// FuzzDecodeMaps: any bytes decode to maps or an error, within the fuzz
// allocation bound (alloccheck.Bound), and decoded maps encode and decode
// again to the same maps.
func FuzzDecodeMaps(f *testing.F) {
	f.Add(encode(f, sampleMaps()))
	f.Add(encode(f, inspection.PixelMaps{GridH: 1, GridW: 1, Size: 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m inspection.PixelMaps
		var err error
		alloccheck.Within(t, alloccheck.Bound(len(data)), func() { m, err = inspection.DecodeMaps(data) })
		if err != nil {
			return
		}
		again, err := inspection.DecodeMaps(encode(t, m))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("decoded maps do not survive a round trip (%v)", err)
		}
	})
}
