package mapper_test

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/dmad/workstation/core/mapper"
)

// FuzzMapperCodec: any bytes decode to a model or an error, allocate no more
// than a small multiple of their length, and a decoded model re-encodes to
// the same bytes.
func FuzzMapperCodec(f *testing.F) {
	m, err := mapper.Init(mapper.DefaultConfig(4), 1)
	if err != nil {
		f.Fatal(err)
	}
	b, err := m.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var m mapper.Model
		err := m.UnmarshalBinary(data)
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(8*len(data))+1<<20 {
			t.Fatalf("%d bytes allocated %d", len(data), grew)
		}
		if err != nil {
			return
		}
		again, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decoded model does not re-encode to the same bytes (%v)", err)
		}
	})
}
