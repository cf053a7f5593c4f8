package banks

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
)

func testBanks() (*NormalBank, *AnomalyBank) {
	rng := rand.New(rand.NewSource(5))
	nb := &NormalBank{Features: gaussian(rng, 37, 9), Backbone: "mobilenet_v2_imagenet@224"}
	for i := range 37 {
		nb.Source = append(nb.Source, int32(i/4))
		nb.Category = append(nb.Category, int32(i%3))
	}
	ab := &AnomalyBank{Features: gaussian(rng, 11, 9), Backbone: "wrn50"}
	for i := range 11 {
		ab.Kind = append(ab.Kind, uint8(1+i%4))
		ab.Source = append(ab.Source, int32(i)-3)
	}
	return nb, ab
}

func TestBankBytesRoundTrip(t *testing.T) {
	nb, ab := testBanks()
	for _, cat := range []bool{true, false} {
		in := *nb
		if !cat {
			in.Category = nil
		}
		data, err := in.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var out NormalBank
		if err := out.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		if out.Backbone != in.Backbone || out.Features.Rows() != 37 || out.Features.Cols() != 9 ||
			!equalRows(out.Features.RawData(), in.Features.RawData()) || !equalInts(out.Source, in.Source) ||
			!equalInts(out.Category, in.Category) || (out.Category == nil) != (in.Category == nil) {
			t.Fatalf("normal bank (category %v) changed in the round trip", cat)
		}
	}
	data, err := ab.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out AnomalyBank
	if err := out.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if out.Backbone != ab.Backbone || !equalRows(out.Features.RawData(), ab.Features.RawData()) ||
		!bytes.Equal(out.Kind, ab.Kind) || !equalInts(out.Source, ab.Source) {
		t.Fatal("anomaly bank changed in the round trip")
	}
	// A bank without source ids reads back with NoSource everywhere.
	noSrc := *ab
	noSrc.Source = nil
	data, err = noSrc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := out.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	for i, v := range out.Source {
		if v != NoSource {
			t.Fatalf("entry %d: source %d, want NoSource", i, v)
		}
	}
	// Streaming: two banks back to back in one stream.
	var buf bytes.Buffer
	if _, err := nb.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := ab.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	total := int64(buf.Len())
	var n2 NormalBank
	var a2 AnomalyBank
	r1, err := n2.ReadFrom(&buf)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a2.ReadFrom(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r1+r2 != total || !bytes.Equal(a2.Kind, ab.Kind) || !equalInts(n2.Source, nb.Source) {
		t.Fatalf("stream: read %d+%d of %d bytes", r1, r2, total)
	}
}

func equalInts(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBankBytesCorruption(t *testing.T) {
	nb, ab := testBanks()
	good, err := nb.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	positions := []int{0, 9, 12, 20, 30, 50, len(good) / 2, len(good) - 40, len(good) - 1}
	for _, p := range positions {
		bad := append([]byte(nil), good...)
		bad[p] ^= 0x10
		var b NormalBank
		if err := b.UnmarshalBinary(bad); err == nil {
			t.Errorf("flipped byte %d of %d accepted", p, len(good))
		} else if p != 9 && !errors.Is(err, ErrCorrupt) { // byte 9 is inside the version, caught by the header CRC
			t.Errorf("flipped byte %d: error %v does not wrap ErrCorrupt", p, err)
		}
	}
	for _, n := range []int{0, 5, 26, 40, len(good) / 2, len(good) - 4, len(good) - 1} {
		var b NormalBank
		err := b.UnmarshalBinary(good[:n])
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d of %d bytes: %v", n, len(good), err)
		}
	}
	var b NormalBank
	if err := b.UnmarshalBinary(append(append([]byte(nil), good...), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	ad, err := ab.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.UnmarshalBinary(ad); err == nil {
		t.Error("anomaly bank bytes read as a normal bank")
	}
	// A failed read leaves the bank untouched.
	if b.Features != nil {
		t.Error("failed read modified the bank")
	}
	if _, err := (&NormalBank{Features: nb.Features, Source: nb.Source[:3]}).MarshalBinary(); err == nil {
		t.Error("inconsistent bank marshalled")
	}
}
