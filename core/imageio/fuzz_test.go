package imageio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image/jpeg"
	"image/png"
	"runtime"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/dmad/workstation/core/imageio/imagetest"
)

// Issue 11, defect 4: a 1.1 KB PNG claiming 100000×100000 crashed train and
// inspect out of memory. It must be refused from its header.
func TestDecodeRefusesDecompressionBomb(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Decode(imagetest.BombPNG(100000, 100000))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("refusing the bomb allocated %d MiB", grew>>20)
	}
	// The limit is configurable.
	t.Setenv("DMAD_MAX_PIXELS", "100")
	if _, err := Decode(encodePNG(t, gradient(11, 10))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("11×10 image under a 100-pixel limit: %v", err)
	}
	if _, err := Decode(encodePNG(t, gradient(10, 10))); err != nil {
		t.Fatalf("10×10 image under a 100-pixel limit: %v", err)
	}
}

// decodeAllocBound is what decoding an image of the given header size may
// allocate: 8 bytes per pixel (RGBA64), twice (orientation, conversion),
// plus fixed buffers.
func decodeAllocBound(w, h int) uint64 { return uint64(16*w*h) + 16<<20 }

// FuzzDecode: arbitrary bytes through the decoders of every format the
// workstation reads (PNG, JPEG with EXIF orientation, BMP, TIFF, GIF) and
// through mask binarisation never crash, and never allocate beyond what
// their header size allows (checked against a small pixel limit).
func FuzzDecode(f *testing.F) {
	img := gradient(6, 5)
	var b bytes.Buffer
	png.Encode(&b, img)
	f.Add(b.Bytes())
	b.Reset()
	jpeg.Encode(&b, img, nil)
	f.Add(b.Bytes())
	f.Add(append(append([]byte{0xFF, 0xD8}, exifSegment(6, binary.BigEndian)...), b.Bytes()[2:]...))
	b.Reset()
	bmp.Encode(&b, img)
	f.Add(b.Bytes())
	b.Reset()
	tiff.Encode(&b, img, nil)
	f.Add(b.Bytes())
	f.Add(imagetest.BombPNG(100000, 100000))
	f.Fuzz(func(t *testing.T, data []byte) {
		t.Setenv("DMAD_MAX_PIXELS", "1000000")
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		img, err := Decode(data)
		if err == nil {
			bnd := img.Bounds()
			if bnd.Dx() <= 0 || bnd.Dy() <= 0 || int64(bnd.Dx())*int64(bnd.Dy()) > 1000000 {
				t.Fatalf("decoded an image of %v", bnd)
			}
			Binarize(img)
			ToRGBA(img)
		}
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > decodeAllocBound(1000, 1000)+uint64(4*len(data)) {
			t.Fatalf("%d input bytes allocated %d bytes", len(data), grew)
		}
		JPEGOrientation(data)
	})
}
