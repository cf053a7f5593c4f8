package dataset

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestIsImage(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"a.png", true}, {"B.JPG", true}, {"c.tiff", true}, {"d.bmp", true},
		{".hidden.png", false}, {"a.png.part", false}, {"a.tmp", false}, {"notes.txt", false},
	} {
		if got := IsImage(tc.name); got != tc.want {
			t.Errorf("IsImage(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCheckImageTruncated(t *testing.T) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 7, 5))); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	full := filepath.Join(dir, "full.png")
	half := filepath.Join(dir, "half.png")
	if err := os.WriteFile(full, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(half, buf.Bytes()[:buf.Len()-12], 0o644); err != nil {
		t.Fatal(err)
	}
	if w, h, err := CheckImage(full); err != nil || w != 7 || h != 5 {
		t.Fatalf("CheckImage(full) = %d×%d, %v; want 7×5, nil", w, h, err)
	}
	if _, _, err := CheckImage(half); err == nil {
		t.Fatal("CheckImage accepted a PNG without its IEND chunk")
	}
	// Cut inside the IEND chunk's CRC: "IEND" is there, the file is not whole.
	for _, cut := range []int{1, 3} {
		os.WriteFile(half, buf.Bytes()[:buf.Len()-cut], 0o644)
		if _, _, err := CheckImage(half); err == nil {
			t.Errorf("CheckImage accepted a PNG missing the last %d bytes of its IEND CRC", cut)
		}
	}
}
