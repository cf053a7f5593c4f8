// Package imageio loads the images and defect masks the workstation works on:
// PNG, JPEG, BMP and TIFF, greyscale, colour and 16-bit, with the EXIF
// orientation of JPEG files applied, and binary masks.
//
// Decoding sniffs the content, not the file extension, so a mask saved as
// .png that really holds JPEG data still loads.
package imageio

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif" // registered for completeness; GIF masks appear in some datasets
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"strconv"

	_ "golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// isTIFF reports whether head starts like a TIFF file.
func isTIFF(head []byte) bool {
	return bytes.HasPrefix(head, []byte("II*\x00")) || bytes.HasPrefix(head, []byte("MM\x00*"))
}

// DecodeConfig reads the format and size of the image in the first size
// bytes of r. TIFF is read through r's ReaderAt: through image.DecodeConfig
// (which hides it behind a bufio.Reader) the TIFF decoder buffers the stream
// up to whatever offset the header names, and a 126-byte file naming an
// offset of 4 GB allocated 4 GB.
func DecodeConfig(r io.ReaderAt, size int64) (image.Config, string, error) {
	head := make([]byte, 4)
	n, _ := r.ReadAt(head, 0)
	if isTIFF(head[:n]) {
		cfg, err := tiff.DecodeConfig(io.NewSectionReader(r, 0, size))
		return cfg, "tiff", err
	}
	return image.DecodeConfig(io.NewSectionReader(r, 0, size))
}

// Load reads and decodes the image at path. JPEG files are turned upright
// according to their EXIF orientation tag. The returned image keeps its
// decoded colour model (e.g. *image.Gray16 for a 16-bit greyscale PNG), except
// that a re-oriented JPEG becomes *image.Gray or *image.RGBA.
func Load(path string) (image.Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load image: %w", err)
	}
	img, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("load image %s: %w", path, err)
	}
	return img, nil
}

// DefaultMaxPixels is the largest image (width × height) decoded unless
// $DMAD_MAX_PIXELS says otherwise: 100 megapixels, far beyond any camera
// image the workstation inspects, and at most 800 MB decoded (16-bit RGBA).
const DefaultMaxPixels = 100_000_000

// ErrTooLarge is wrapped by the error for an image whose header claims more
// pixels than the limit (a decompression bomb: a 1 KB PNG can claim
// 100000×100000).
var ErrTooLarge = errors.New("image too large")

// MaxPixels returns the pixel limit: $DMAD_MAX_PIXELS when it holds a
// positive number, else DefaultMaxPixels.
func MaxPixels() int64 {
	if n, err := strconv.ParseInt(os.Getenv("DMAD_MAX_PIXELS"), 10, 64); err == nil && n > 0 {
		return n
	}
	return DefaultMaxPixels
}

// CheckSize refuses a size from an image header that is empty or exceeds
// the pixel limit, before anything is allocated for it.
func CheckSize(w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("image has size %d×%d", w, h)
	}
	if limit := MaxPixels(); int64(w)*int64(h) > limit {
		return fmt.Errorf("image claims %d×%d pixels, more than the limit of %d (set DMAD_MAX_PIXELS to raise it): %w", w, h, limit, ErrTooLarge)
	}
	return nil
}

// Decode decodes an encoded image held in memory, applying the EXIF
// orientation of JPEG data. The size in the header is checked against
// MaxPixels before the pixels are decoded.
func Decode(data []byte) (image.Image, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("empty file")
	}
	cfg, _, err := DecodeConfig(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := CheckSize(cfg.Width, cfg.Height); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	var img image.Image
	format := "tiff"
	if isTIFF(data) {
		img, err = tiff.Decode(bytes.NewReader(data)) // a ReaderAt, see DecodeConfig
	} else {
		img, format, err = image.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if b := img.Bounds(); b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, fmt.Errorf("decode %s: empty image", format)
	}
	if format == "jpeg" {
		if o := JPEGOrientation(data); o > 1 {
			img = Orient(img, o)
		}
	}
	return img, nil
}

// Size reports the width and height Load would return for the image at
// path (EXIF orientation applied), reading only the start of the file.
func Size(path string) (w, h int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("image size: %w", err)
	}
	defer f.Close()
	// A JPEG's EXIF block (at most 64 KiB, for the orientation) sits at the
	// start; the size is read through the file's ReaderAt.
	head := make([]byte, 256<<10)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return 0, 0, fmt.Errorf("image size %s: %w", path, err)
	}
	head = head[:n]
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("image size %s: %w", path, err)
	}
	cfg, format, err := DecodeConfig(f, st.Size())
	if err != nil {
		return 0, 0, fmt.Errorf("image size %s: %w", path, err)
	}
	w, h = cfg.Width, cfg.Height
	if format == "jpeg" && JPEGOrientation(head) >= 5 {
		w, h = h, w
	}
	return w, h, nil
}

// LoadMask reads a defect mask and binarises it: a pixel whose brightest
// channel (premultiplied by alpha) is above 127 of 255 becomes 255, every
// other pixel 0. Colour masks (e.g. red strokes on black) and masks painted on
// a transparent background therefore load as expected. The result's bounds
// start at (0, 0).
func LoadMask(path string) (*image.Gray, error) {
	img, err := Load(path)
	if err != nil {
		return nil, fmt.Errorf("load mask: %w", err)
	}
	return Binarize(img), nil
}

// Binarize turns img into a binary mask (0 or 255) with bounds starting at
// (0, 0); see LoadMask for the rule.
func Binarize(img image.Image) *image.Gray {
	b := img.Bounds()
	out := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	if g, ok := img.(*image.Gray); ok {
		for y := 0; y < b.Dy(); y++ {
			src := g.Pix[(y+b.Min.Y-g.Rect.Min.Y)*g.Stride+(b.Min.X-g.Rect.Min.X):]
			dst := out.Pix[y*out.Stride:]
			for x := 0; x < b.Dx(); x++ {
				if src[x] > 127 {
					dst[x] = 255
				}
			}
		}
		return out
	}
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			m := max(r, g, bl) >> 8
			if m > 127 {
				out.Pix[y*out.Stride+x] = 255
			}
		}
	}
	return out
}

// ToRGBA returns img as 8-bit RGBA with bounds starting at (0, 0). Greyscale
// becomes R=G=B; 16-bit channels keep their high byte (rounded by the
// standard colour conversion). An *image.RGBA already at the origin is
// returned as is.
func ToRGBA(img image.Image) *image.RGBA {
	if r, ok := img.(*image.RGBA); ok && r.Rect.Min == (image.Point{}) {
		return r
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Rect, img, b.Min, draw.Src)
	return out
}

// ToGray returns img as 8-bit greyscale (ITU-R BT.601 luma, as
// color.GrayModel) with bounds starting at (0, 0).
func ToGray(img image.Image) *image.Gray {
	if g, ok := img.(*image.Gray); ok && g.Rect.Min == (image.Point{}) {
		return g
	}
	b := img.Bounds()
	out := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			out.Pix[y*out.Stride+x] = color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray).Y
		}
	}
	return out
}
