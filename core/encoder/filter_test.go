package encoder

import (
	"fmt"
	"image"
	"strings"
	"testing"
)

// square paints [x0, x1)×[y0, y1) white on a w×h black mask.
func square(w, h, x0, y0, x1, y1 int) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, w, h))
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			m.Pix[y*m.Stride+x] = 255
		}
	}
	return m
}

// cells lists the flagged cells as "r,c".
func cells(flags []bool, w0 int) string {
	var s []string
	for i, f := range flags {
		if f {
			s = append(s, fmt.Sprintf("%d,%d", i/w0, i%w0))
		}
	}
	return strings.Join(s, " ")
}

func TestFilter(t *testing.T) {
	plain := Config{InputSize: 64}
	crop := Config{InputSize: 64, Crop: true, ResizeTo: 80}
	tests := []struct {
		name string
		mask *image.Gray
		cfg  Config
		want string
	}{
		// 8-pixel cells; torch-style bilinear samples pixels 8i+3 and 8i+4,
		// so a defect over pixels 16..31 reaches cells 2 and 3.
		{"square", square(64, 64, 16, 16, 32, 32), plain, "2,2 2,3 3,2 3,3"},
		{"square from 128", square(128, 128, 32, 32, 64, 64), plain, "2,2 2,3 3,2 3,3"},
		{"wide image", square(128, 64, 32, 16, 64, 32), plain, "2,2 2,3 3,2 3,3"},
		{"one sample pixel", square(64, 64, 20, 44, 21, 45), plain, "5,2"},
		{"tiny defect between samples", square(64, 64, 0, 0, 2, 2), plain, "0,0"},
		// missed by the samples: the cells with most defect area, ties included
		{"tiny defect on a cell border", square(64, 64, 38, 9, 42, 10), plain, "1,4 1,5"},
		{"tiny defect mostly in one cell", square(64, 64, 37, 9, 41, 10), plain, "1,4"},
		{"empty", image.NewGray(image.Rect(0, 0, 64, 64)), plain, ""},
		{"nil", nil, plain, ""},
		// crop: resize 80, offset 8; pixels 24..39 of the mask are 16..31 of the input.
		{"crop square", square(80, 80, 24, 24, 40, 40), crop, "2,2 2,3 3,2 3,3"},
		{"crop removes border defect", square(80, 80, 0, 0, 80, 6), crop, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			flags := Filter(tc.mask, 8, 8, tc.cfg)
			if len(flags) != 64 {
				t.Fatalf("%d flags, want 64", len(flags))
			}
			if got := cells(flags, 8); got != tc.want {
				t.Errorf("flagged %q, want %q", got, tc.want)
			}
		})
	}
}
