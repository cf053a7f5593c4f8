package imageio

import (
	"encoding/binary"
	"image"
)

// JPEGOrientation reads the EXIF orientation tag (0x0112) from the APP1
// segment of JPEG data. It returns 1 (upright) when the data has no EXIF
// block, no orientation tag, or a malformed one; otherwise a value in 1..8 as
// defined by EXIF/TIFF.
func JPEGOrientation(data []byte) int {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return 1
	}
	p := 2
	for p+4 <= len(data) {
		if data[p] != 0xFF {
			return 1
		}
		marker := data[p+1]
		if marker == 0xFF { // fill byte
			p++
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan / end of image: no EXIF before it
			return 1
		}
		if marker >= 0xD0 && marker <= 0xD7 || marker == 0x01 {
			p += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(data[p+2:]))
		if n < 2 || p+2+n > len(data) {
			return 1
		}
		seg := data[p+4 : p+2+n]
		if marker == 0xE1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			if o := tiffOrientation(seg[6:]); o >= 1 && o <= 8 {
				return o
			}
			return 1
		}
		p += 2 + n
	}
	return 1
}

// tiffOrientation reads tag 0x0112 of IFD0 in a TIFF-structured EXIF block.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	ifd := int(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > len(t) {
		return 0
	}
	count := int(bo.Uint16(t[ifd:]))
	for i := 0; i < count; i++ {
		e := ifd + 2 + 12*i
		if e+12 > len(t) {
			return 0
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		switch bo.Uint16(t[e+2:]) { // type
		case 3: // SHORT
			return int(bo.Uint16(t[e+8:]))
		case 4: // LONG (seen in some writers)
			return int(bo.Uint32(t[e+8:]))
		}
		return 0
	}
	return 0
}

// Orient returns img transformed so that an image stored with EXIF
// orientation o (1..8) appears upright. Greyscale images stay *image.Gray;
// everything else becomes *image.RGBA. Orientation 1 or an unknown value
// returns img unchanged.
func Orient(img image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	ow, oh := w, h
	if o >= 5 { // 5..8 swap the axes
		ow, oh = h, w
	}
	// src maps a destination pixel (x, y) to its source pixel.
	src := func(x, y int) (int, int) {
		switch o {
		case 2: // mirrored horizontally
			return w - 1 - x, y
		case 3: // rotated 180°
			return w - 1 - x, h - 1 - y
		case 4: // mirrored vertically
			return x, h - 1 - y
		case 5: // transposed
			return y, x
		case 6: // stored rotated 90° CCW: turn 90° CW
			return y, h - 1 - x
		case 7: // transversed
			return w - 1 - y, h - 1 - x
		default: // 8: stored rotated 90° CW: turn 90° CCW
			return w - 1 - y, x
		}
	}
	if g, ok := img.(*image.Gray); ok {
		out := image.NewGray(image.Rect(0, 0, ow, oh))
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				sx, sy := src(x, y)
				out.Pix[y*out.Stride+x] = g.GrayAt(b.Min.X+sx, b.Min.Y+sy).Y
			}
		}
		return out
	}
	rgba := ToRGBA(img) // read only
	out := image.NewRGBA(image.Rect(0, 0, ow, oh))
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			sx, sy := src(x, y)
			copy(out.Pix[y*out.Stride+4*x:y*out.Stride+4*x+4], rgba.Pix[sy*rgba.Stride+4*sx:])
		}
	}
	return out
}
