package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/mat"
)

// markedBytes returns n bytes made of the repeated marker of each chunk, so a
// chunk's location in the file can be found.
func markedBytes(tag string, n, chunk int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		marker := fmt.Sprintf("<%s-chunk-%04d>", tag, b.Len()/chunk)
		b.WriteString(marker[:min(len(marker), chunk-b.Len()%chunk)])
	}
	return b.Bytes()[:n]
}

// flipAt flips one byte of the file at the first occurrence of pattern.
func flipAt(t *testing.T, path string, pattern []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, pattern)
	if i < 0 {
		t.Fatalf("pattern %q not in %s", pattern, path)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{data[i+len(pattern)/2] ^ 0x5a}, int64(i+len(pattern)/2)); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptionIsReportedAndContained(t *testing.T) {
	const chunk = 8 << 10
	p := newProject(t)
	p.chunk = chunk
	ctx := context.Background()
	a := markedBytes("bankA", 5*chunk+100, chunk)
	b := markedBytes("bankB", 3*chunk, chunk)
	if _, err := p.PutBlob(ctx, "banks", "normal", bytes.NewReader(a)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PutBlob(ctx, "banks", "anomaly", bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	// A model whose mapper part gets damaged, and one that stays intact.
	mparts := map[string]io.Reader{
		PartNormalBank: bytes.NewReader(markedBytes("m1n", 2*chunk, chunk)),
		PartMapper:     bytes.NewReader(markedBytes("m1m", 4*chunk, chunk)),
	}
	if err := p.SaveModel(ctx, &ModelRecord{Version: 3, Active: true}, mparts); err != nil {
		t.Fatal(err)
	}
	intact := markedBytes("m2m", 2*chunk, chunk)
	if err := p.SaveModel(ctx, &ModelRecord{Version: 4}, map[string]io.Reader{PartMapper: bytes.NewReader(intact)}); err != nil {
		t.Fatal(err)
	}
	// Features with a recognisable bit pattern (stored as float32, so the
	// pattern is found in the file), and a mask with a recognisable row.
	st := p.Settings()
	st.FeatureCache = FeatureFloat32
	if err := p.PutSettings(st); err != nil {
		t.Fatal(err)
	}
	const bits = 0x3e1d2c4b
	fm := mat.New(16, 16)
	for i := range fm.RawData() {
		fm.RawData()[i] = math.Float32frombits(bits)
	}
	other := mat.New(16, 16)
	if err := p.PutFeaturesBatch(ctx, "enc", []FeatureEntry{{1, fm}, {2, other}}); err != nil {
		t.Fatal(err)
	}
	path := p.Path()
	p.Close()

	flipAt(t, path, []byte("<bankA-chunk-0002>"))
	flipAt(t, path, []byte("<m1m-chunk-0003>"))
	var pat [32]byte
	for i := 0; i < len(pat); i += 4 {
		binary.LittleEndian.PutUint32(pat[i:], bits)
	}
	flipAt(t, path, pat[:])

	p, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("a project with damaged content must still open: %v", err)
	}
	defer p.Close()
	p.chunk = chunk

	// The damaged blob: the undamaged chunks before it are delivered, then a named error.
	br, err := p.OpenBlob("banks", "normal")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(br)
	if err == nil || err.Error() != "blob banks/normal chunk 2: checksum mismatch" {
		t.Fatalf("read damaged blob: %v", err)
	}
	if !bytes.Equal(got, a[:2*chunk]) {
		t.Fatalf("delivered %d bytes before the damage, want the first %d intact", len(got), 2*chunk)
	}
	if err := p.VerifyBlob("banks", "normal"); err == nil || !strings.Contains(err.Error(), "chunk 2: checksum mismatch") {
		t.Fatalf("verify damaged blob: %v", err)
	}
	// Other blobs are untouched.
	br, _ = p.OpenBlob("banks", "anomaly")
	if got, err := io.ReadAll(br); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("undamaged blob: %v", err)
	}
	// The damaged model names its part and chunk, refuses export; the other model is fine.
	if err := p.VerifyModel(3); err == nil || !strings.Contains(err.Error(), "blob models/3/mapper chunk 3: checksum mismatch") {
		t.Fatalf("verify damaged model: %v", err)
	}
	if err := p.ExportModel(ctx, 3, io.Discard); err == nil || !strings.Contains(err.Error(), "models/3/mapper chunk 3") {
		t.Fatalf("export damaged model: %v", err)
	}
	if got := readPart(t, p, 3, PartNormalBank); len(got) != 2*chunk {
		t.Fatal("undamaged part of a damaged model unreadable")
	}
	if err := p.VerifyModel(4); err != nil {
		t.Fatal(err)
	}
	if got := readPart(t, p, 4, PartMapper); !bytes.Equal(got, intact) {
		t.Fatal("intact model differs")
	}
	// Feature entries: the damaged one is named, the other reads.
	if _, err := p.Features("enc", 1); err == nil || err.Error() != "features enc/1: checksum mismatch" {
		t.Fatalf("damaged features: %v", err)
	}
	if _, err := p.Features("enc", 2); err != nil {
		t.Fatal(err)
	}
	// Still writable: new data goes in and reads back.
	if err := p.PutMask(9, image.NewGray(image.Rect(0, 0, 3, 3))); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Mask(9); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptMask(t *testing.T) {
	p := newProject(t)
	m := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range m.Pix {
		m.Pix[i] = uint8(i * 7)
	}
	if err := p.PutMask(5, m); err != nil {
		t.Fatal(err)
	}
	if err := p.PutMask(6, image.NewGray(image.Rect(0, 0, 32, 32))); err != nil {
		t.Fatal(err)
	}
	path := p.Path()
	p.Close()
	// Damage the width in the IHDR of mask 5 (64 wide; mask 6 is 32 wide),
	// in every copy bbolt's copy-on-write left in the file.
	data, _ := os.ReadFile(path)
	pattern := []byte("IHDR\x00\x00\x00\x40")
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	n := 0
	for off := 0; ; {
		i := bytes.Index(data[off:], pattern)
		if i < 0 {
			break
		}
		f.WriteAt([]byte{0x41}, int64(off+i+7))
		off += i + 1
		n++
	}
	f.Close()
	if n == 0 {
		t.Fatal("mask 5 not found in the file")
	}
	p, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err5 := p.Mask(5)
	_, err6 := p.Mask(6)
	if err5 == nil || err5.Error() != "mask 5: checksum mismatch" {
		t.Fatalf("damaged mask: %v", err5)
	}
	if err6 != nil {
		t.Fatalf("undamaged mask: %v", err6)
	}
}
