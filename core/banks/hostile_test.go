package banks

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/dmad/workstation/internal/alloccheck"
	"hash/crc32"
	"io"
	"runtime"
	"testing"
)

// lyingHeader returns a bank of the given kind whose (correctly checksummed)
// header claims rows×cols but which carries no data: an attacker's file.
func lyingHeader(kind uint8, rows uint64, cols uint32) []byte {
	h := make([]byte, fixedHeader)
	copy(h, bankMagic)
	binary.LittleEndian.PutUint16(h[8:], bankVersion)
	h[10] = kind
	binary.LittleEndian.PutUint64(h[12:], rows)
	binary.LittleEndian.PutUint32(h[20:], cols)
	return binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(h))
}

// onlyReader hides Len() so the decoder cannot know the source's length.
type onlyReader struct{ io.Reader }

// A header claiming 2^33 floats must be refused (byte slice) or cost no
// more than the bytes present (stream) — it used to allocate 32 GiB.
func TestBankHugeHeaderAllocatesNothing(t *testing.T) {
	for _, kind := range []uint8{kindNormal, kindAnomaly} {
		data := append(lyingHeader(kind, 1<<23, 1<<10), make([]byte, 4096)...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var errSlice, errStream error
		if kind == kindNormal {
			errSlice = new(NormalBank).UnmarshalBinary(data)
			_, errStream = new(NormalBank).ReadFrom(onlyReader{bytes.NewReader(data)})
		} else {
			errSlice = new(AnomalyBank).UnmarshalBinary(data)
			_, errStream = new(AnomalyBank).ReadFrom(onlyReader{bytes.NewReader(data)})
		}
		runtime.ReadMemStats(&after)
		for _, err := range []error{errSlice, errStream} {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("kind %d: err %v, want ErrCorrupt", kind, err)
			}
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
			t.Errorf("kind %d: decoding a 4 KiB lie allocated %d MiB", kind, grew>>20)
		}
	}
}

// FuzzBankBytes: arbitrary bytes never panic, never allocate beyond a small
// multiple of their length, and what decodes re-encodes to the same bytes.
func FuzzBankBytes(f *testing.F) {
	nb, ab := testBanks()
	nb.Features, nb.Source, nb.Category = nb.Features.Slice(0, 3), nb.Source[:3], nb.Category[:3]
	ab.Features, ab.Kind, ab.Source = ab.Features.Slice(0, 2), ab.Kind[:2], ab.Source[:2]
	nbb, _ := nb.MarshalBinary()
	abb, _ := ab.MarshalBinary()
	f.Add(nbb)
	f.Add(abb)
	f.Add(lyingHeader(kindNormal, 1<<33, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		alloccheck.Within(t, 4*alloccheck.Bound(len(data)), func() { bankBytesRoundTrip(t, data) })
	})
}

// bankBytesRoundTrip decodes data as both banks, whole and streamed (four
// decodes: FuzzBankBytes allows four times the decoder bound).
func bankBytesRoundTrip(t *testing.T, data []byte) {
	var n NormalBank
	if err := n.UnmarshalBinary(data); err == nil {
		again, err := n.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("normal bank decoded but does not re-encode to the same bytes (err %v)", err)
		}
	}
	var a AnomalyBank
	if err := a.UnmarshalBinary(data); err == nil {
		if _, err := a.MarshalBinary(); err != nil {
			t.Fatalf("anomaly bank decoded but does not re-encode: %v", err)
		}
	}
	// The streaming path (no known length) must survive the same bytes.
	new(NormalBank).ReadFrom(onlyReader{bytes.NewReader(data)})
	new(AnomalyBank).ReadFrom(onlyReader{bytes.NewReader(data)})
}
