package imageio

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gradient fills a w×h RGBA image with a pattern that differs per channel.
func gradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetRGBA(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) * 7), 255})
		}
	}
	return img
}

func TestLoadLosslessFormats(t *testing.T) {
	rgba := gradient(13, 7)
	gray := image.NewGray(image.Rect(0, 0, 9, 5))
	gray16 := image.NewGray16(image.Rect(0, 0, 9, 5))
	rgba64 := image.NewRGBA64(image.Rect(0, 0, 6, 4))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i * 5)
	}
	for y := 0; y < 5; y++ {
		for x := 0; x < 9; x++ {
			gray16.SetGray16(x, y, color.Gray16{Y: uint16(x*7000 + y*300 + 0x7f)})
		}
	}
	for y := 0; y < 4; y++ {
		for x := 0; x < 6; x++ {
			rgba64.SetRGBA64(x, y, color.RGBA64{uint16(x * 10000), uint16(y * 16000), 0x8080, 0xffff})
		}
	}
	enc := func(f func(*bytes.Buffer, image.Image) error) func(*testing.T, image.Image) []byte {
		return func(t *testing.T, img image.Image) []byte {
			var buf bytes.Buffer
			if err := f(&buf, img); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}
	}
	pngEnc := enc(func(b *bytes.Buffer, i image.Image) error { return png.Encode(b, i) })
	bmpEnc := enc(func(b *bytes.Buffer, i image.Image) error { return bmp.Encode(b, i) })
	tiffEnc := enc(func(b *bytes.Buffer, i image.Image) error { return tiff.Encode(b, i, nil) })
	tests := []struct {
		name string
		img  image.Image
		enc  func(*testing.T, image.Image) []byte
	}{
		{"rgba.png", rgba, pngEnc},
		{"gray.png", gray, pngEnc},
		{"gray16.png", gray16, pngEnc},
		{"rgba64.png", rgba64, pngEnc},
		{"rgba.bmp", rgba, bmpEnc},
		{"gray.bmp", gray, bmpEnc},
		{"rgba.tiff", rgba, tiffEnc},
		{"gray16.tif", gray16, tiffEnc},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, tc.name, tc.enc(t, tc.img))
			got, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if got.Bounds().Size() != tc.img.Bounds().Size() {
				t.Fatalf("size %v, want %v", got.Bounds().Size(), tc.img.Bounds().Size())
			}
			// Full-precision colours must survive, and the 8-bit view must
			// be the standard conversion of the original.
			want8, got8 := ToRGBA(tc.img), ToRGBA(got)
			b := tc.img.Bounds()
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					r0, g0, b0, a0 := tc.img.At(x, y).RGBA()
					r1, g1, b1, a1 := got.At(x, y).RGBA()
					if [4]uint32{r0, g0, b0, a0} != [4]uint32{r1, g1, b1, a1} {
						t.Fatalf("pixel (%d,%d) = %v, want %v", x, y, []uint32{r1, g1, b1, a1}, []uint32{r0, g0, b0, a0})
					}
					if want8.RGBAAt(x, y) != got8.RGBAAt(x, y) {
						t.Fatalf("8-bit pixel (%d,%d) = %v, want %v", x, y, got8.RGBAAt(x, y), want8.RGBAAt(x, y))
					}
				}
			}
		})
	}
}

func TestToRGBA16BitHighByte(t *testing.T) {
	g := image.NewGray16(image.Rect(0, 0, 3, 1))
	vals := []uint16{0x0000, 0x12ff, 0xfe01}
	for x, v := range vals {
		g.SetGray16(x, 0, color.Gray16{Y: v})
	}
	p := writeFile(t, "g16.png", encodePNG(t, g))
	img, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := img.(*image.Gray16); !ok {
		t.Fatalf("16-bit grey PNG decoded as %T, want *image.Gray16", img)
	}
	rgba := ToRGBA(img)
	for x, v := range vals {
		want := uint8(v >> 8)
		if c := rgba.RGBAAt(x, 0); c.R != want || c.G != want || c.B != want || c.A != 255 {
			t.Errorf("x=%d: %v, want grey %d", x, c, want)
		}
	}
}

// quadrants makes a 32×16 greyscale image whose four 16×8 quadrants have the
// levels tl, tr, bl, br (block aligned, so JPEG keeps them nearly exact).
func quadrants(tl, tr, bl, br uint8) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, 32, 16))
	for y := 0; y < 16; y++ {
		for x := 0; x < 32; x++ {
			v := tl
			switch {
			case x >= 16 && y < 8:
				v = tr
			case x < 16 && y >= 8:
				v = bl
			case x >= 16 && y >= 8:
				v = br
			}
			img.Pix[y*img.Stride+x] = v
		}
	}
	return img
}

// exifSegment builds an APP1 segment holding only an orientation tag.
func exifSegment(o uint16, bo binary.ByteOrder) []byte {
	var t bytes.Buffer
	if bo == binary.LittleEndian {
		t.WriteString("II")
	} else {
		t.WriteString("MM")
	}
	b2 := make([]byte, 2)
	b4 := make([]byte, 4)
	bo.PutUint16(b2, 42)
	t.Write(b2)
	bo.PutUint32(b4, 8)
	t.Write(b4)
	bo.PutUint16(b2, 2) // two entries: an unrelated one first
	t.Write(b2)
	entry := func(tag, typ uint16, count uint32, val uint16) {
		bo.PutUint16(b2, tag)
		t.Write(b2)
		bo.PutUint16(b2, typ)
		t.Write(b2)
		bo.PutUint32(b4, count)
		t.Write(b4)
		bo.PutUint16(b2, val)
		t.Write(b2)
		t.Write([]byte{0, 0})
	}
	entry(0x0100, 3, 1, 32) // ImageWidth
	entry(0x0112, 3, 1, o)  // Orientation
	t.Write([]byte{0, 0, 0, 0})
	payload := append([]byte("Exif\x00\x00"), t.Bytes()...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	return append(seg, payload...)
}

func TestJPEGOrientation(t *testing.T) {
	const a, b, c, d = 20, 90, 160, 230 // source TL, TR, BL, BR
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, quadrants(a, b, c, d), &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	plain := buf.Bytes()
	tests := []struct {
		o              uint16
		w, h           int
		tl, tr, bl, br uint8
	}{
		{1, 32, 16, a, b, c, d},
		{2, 32, 16, b, a, d, c},
		{3, 32, 16, d, c, b, a},
		{4, 32, 16, c, d, a, b},
		{5, 16, 32, a, c, b, d},
		{6, 16, 32, c, a, d, b},
		{7, 16, 32, d, b, c, a},
		{8, 16, 32, b, d, a, c},
	}
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, tc := range tests {
			t.Run(bo.String()+"/"+string(rune('0'+tc.o)), func(t *testing.T) {
				data := append([]byte{0xFF, 0xD8}, exifSegment(tc.o, bo)...)
				data = append(data, plain[2:]...)
				if got := JPEGOrientation(data); got != int(tc.o) {
					t.Fatalf("JPEGOrientation = %d, want %d", got, tc.o)
				}
				path := writeFile(t, "o.jpg", data)
				if w, h, err := Size(path); err != nil || w != tc.w || h != tc.h {
					t.Fatalf("Size = %d, %d, %v; want %d, %d", w, h, err, tc.w, tc.h)
				}
				img, err := Load(path)
				if err != nil {
					t.Fatal(err)
				}
				g, ok := img.(*image.Gray)
				if !ok {
					t.Fatalf("grey JPEG decoded as %T, want *image.Gray", img)
				}
				if sz := g.Bounds().Size(); sz.X != tc.w || sz.Y != tc.h {
					t.Fatalf("size %v, want %dx%d", sz, tc.w, tc.h)
				}
				// Sample the centre of each quadrant.
				at := func(fx, fy float64) uint8 {
					return g.GrayAt(int(fx*float64(tc.w)), int(fy*float64(tc.h))).Y
				}
				got := []uint8{at(0.25, 0.25), at(0.75, 0.25), at(0.25, 0.75), at(0.75, 0.75)}
				want := []uint8{tc.tl, tc.tr, tc.bl, tc.br}
				for i := range got {
					if diff := int(got[i]) - int(want[i]); diff < -3 || diff > 3 {
						t.Fatalf("quadrants %v, want %v", got, want)
					}
				}
			})
		}
	}
	if o := JPEGOrientation(plain); o != 1 {
		t.Errorf("JPEG without EXIF: orientation %d, want 1", o)
	}
}

func TestLoadErrors(t *testing.T) {
	good := encodePNG(t, gradient(40, 30))
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, gradient(64, 64), nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name string
		data []byte // nil: the file does not exist
	}{
		{"missing.png", nil},
		{"empty.png", []byte{}},
		{"truncated.png", good[:len(good)/2]},
		{"truncated.jpg", jb.Bytes()[:len(jb.Bytes())/2]},
		{"garbage.png", []byte("this is not an image at all")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if tc.data != nil {
				if err := os.WriteFile(p, tc.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(p)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file %s", err, p)
			}
			if _, err := LoadMask(p); err == nil || !strings.Contains(err.Error(), p) {
				t.Errorf("LoadMask error %v does not name the file %s", err, p)
			}
		})
	}
}

func TestLoadMask(t *testing.T) {
	colour := image.NewNRGBA(image.Rect(0, 0, 5, 1))
	colour.SetNRGBA(0, 0, color.NRGBA{0, 0, 0, 255})       // black
	colour.SetNRGBA(1, 0, color.NRGBA{255, 0, 0, 255})     // red stroke
	colour.SetNRGBA(2, 0, color.NRGBA{0, 0, 128, 255})     // dark blue, just above half
	colour.SetNRGBA(3, 0, color.NRGBA{255, 255, 255, 0})   // transparent
	colour.SetNRGBA(4, 0, color.NRGBA{100, 120, 127, 255}) // dim grey
	grey := image.NewGray(image.Rect(0, 0, 4, 1))
	copy(grey.Pix, []uint8{0, 127, 128, 255})
	g16 := image.NewGray16(image.Rect(0, 0, 2, 1))
	g16.SetGray16(0, 0, color.Gray16{Y: 0x7fff})
	g16.SetGray16(1, 0, color.Gray16{Y: 0x8000})
	tests := []struct {
		name string
		img  image.Image
		want []uint8
	}{
		{"colour.png", colour, []uint8{0, 255, 255, 0, 0}},
		{"grey.png", grey, []uint8{0, 0, 255, 255}},
		{"grey16.png", g16, []uint8{0, 255}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := LoadMask(writeFile(t, tc.name, encodePNG(t, tc.img)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Pix, tc.want) {
				t.Errorf("mask %v, want %v", m.Pix, tc.want)
			}
		})
	}
}

func TestSize(t *testing.T) {
	p := writeFile(t, "s.png", encodePNG(t, gradient(17, 9)))
	w, h, err := Size(p)
	if err != nil || w != 17 || h != 9 {
		t.Fatalf("Size = %d, %d, %v; want 17, 9", w, h, err)
	}
}
