package dataset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"

	"github.com/dmad/workstation/core/imageio" // also registers PNG, JPEG, BMP, TIFF decoders
	"github.com/dmad/workstation/core/progress"
)

// headSize is how much of a file is read for the header and EXIF block.
const headSize = 64 << 10

// validate checks every sample's image and mask in parallel and returns the
// good samples (with Width and Height set) in order, and the problems.
func validate(ctx context.Context, samples []Sample, opts Options) ([]Sample, []Problem, error) {
	workers := opts.Workers
	if workers <= 0 {
		workers = 4
	}
	errs := make([]error, len(samples))
	out := make([]Sample, len(samples))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
	)
	jobs := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i], errs[i] = checkSample(samples[i], opts.FullDecode)
				if opts.Progress != nil {
					mu.Lock()
					done++
					opts.Progress(progress.Event{Stage: progress.CheckDataset, Done: done, Total: len(samples)})
					mu.Unlock()
				}
			}
		}()
	}
	var cerr error
feed:
	for i := range samples {
		select {
		case jobs <- i:
		case <-ctx.Done():
			cerr = ctx.Err()
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if cerr != nil {
		return nil, nil, fmt.Errorf("validate dataset: %w", cerr)
	}
	var good []Sample
	var bad []Problem
	for i, err := range errs {
		var p Problem
		switch {
		case err == nil:
			good = append(good, out[i])
		case errors.As(err, &p):
			bad = append(bad, p)
		default:
			bad = append(bad, Problem{Path: samples[i].Path, Err: err})
		}
	}
	return good, bad, nil
}

// checkSample validates the image and mask of s and fills in its size.
func checkSample(s Sample, full bool) (Sample, error) {
	w, h, err := checkImage(s.Path, full)
	if err != nil {
		return s, Problem{Path: s.Path, Err: err}
	}
	s.Width, s.Height = w, h
	if s.MaskPath == "" {
		return s, nil
	}
	mw, mh, err := checkImage(s.MaskPath, full)
	if err != nil {
		return s, Problem{Path: s.MaskPath, Err: fmt.Errorf("mask of %s: %w", s.Path, err)}
	}
	if mw != w || mh != h {
		return s, Problem{Path: s.MaskPath, Err: fmt.Errorf("mask is %d×%d but its image %s is %d×%d",
			mw, mh, s.Path, w, h)}
	}
	return s, nil
}

// checkImage reads the header of an image file and checks that the file is
// not obviously truncated (PNG: IEND chunk at the end; JPEG: EOI marker near
// the end; BMP: pixel array inside the file). With full it decodes the whole
// image. It returns the size with the EXIF orientation applied.
func checkImage(path string, full bool) (w, h int, err error) {
	if full {
		img, err := imageio.Load(path)
		if err != nil {
			return 0, 0, err
		}
		b := img.Bounds()
		return b.Dx(), b.Dy(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size := st.Size()
	if size == 0 {
		return 0, 0, errors.New("empty file")
	}
	head := make([]byte, min(size, headSize))
	if _, err := io.ReadFull(f, head); err != nil {
		return 0, 0, fmt.Errorf("read: %w", err)
	}
	cfg, format, err := imageio.DecodeConfig(f, size)
	if err != nil {
		return 0, 0, fmt.Errorf("unreadable image: %w", err)
	}
	if err := imageio.CheckSize(cfg.Width, cfg.Height); err != nil {
		return 0, 0, err
	}
	w, h = cfg.Width, cfg.Height
	tailLen := min(size, 4096)
	tail := make([]byte, tailLen)
	if _, err := f.ReadAt(tail, size-tailLen); err != nil {
		return 0, 0, fmt.Errorf("read: %w", err)
	}
	switch format {
	case "png":
		// The IEND chunk type must be followed by its 4-byte CRC: a file cut
		// inside the CRC (a copy still in progress) is truncated too.
		end := tail[max(0, len(tail)-256):]
		if i := bytes.LastIndex(end, []byte("IEND")); i < 0 || len(end)-i < 8 {
			return 0, 0, errors.New("truncated PNG (no complete IEND chunk at the end)")
		}
		// A damaged data chunk passes the header check but fails the
		// decoder at training time: check every chunk's CRC (reading the
		// file, not decoding it).
		if err := checkPNGChunks(io.NewSectionReader(f, 0, size)); err != nil {
			return 0, 0, err
		}
	case "jpeg":
		if !bytes.Contains(tail, []byte{0xFF, 0xD9}) {
			return 0, 0, errors.New("truncated JPEG (no end-of-image marker)")
		}
		if o := imageio.JPEGOrientation(head); o >= 5 {
			w, h = h, w
		}
	case "bmp":
		if len(head) >= 30 {
			offset := int64(binary.LittleEndian.Uint32(head[10:]))
			bpp := int64(binary.LittleEndian.Uint16(head[28:]))
			var compression uint32
			if len(head) >= 34 {
				compression = binary.LittleEndian.Uint32(head[30:])
			}
			row := (bpp*int64(w) + 31) / 32 * 4
			if compression == 0 && offset+row*int64(h) > size {
				return 0, 0, fmt.Errorf("truncated BMP (%d bytes, pixel data needs %d)", size, offset+row*int64(h))
			}
		}
	}
	return w, h, nil
}

// checkPNGChunks walks the chunks of a PNG file and checks each one's CRC-32.
func checkPNGChunks(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if _, err := br.Discard(8); err != nil { // signature
		return fmt.Errorf("truncated PNG: %w", err)
	}
	var hdr [8]byte
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return fmt.Errorf("truncated PNG (no IEND chunk): %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		typ := string(hdr[4:8])
		if n > 1<<31-1 {
			return fmt.Errorf("damaged PNG: chunk %q claims %d bytes", typ, n)
		}
		crc := crc32.NewIEEE()
		crc.Write(hdr[4:8])
		if _, err := io.CopyBuffer(crc, io.LimitReader(br, int64(n)), buf); err != nil {
			return fmt.Errorf("read PNG chunk %q: %w", typ, err)
		}
		var sum [4]byte
		if _, err := io.ReadFull(br, sum[:]); err != nil {
			return fmt.Errorf("truncated PNG in chunk %q: %w", typ, err)
		}
		if binary.BigEndian.Uint32(sum[:]) != crc.Sum32() {
			return fmt.Errorf("damaged PNG: chunk %q fails its CRC", typ)
		}
		if typ == "IEND" {
			return nil
		}
	}
}
