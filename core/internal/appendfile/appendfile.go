// Package appendfile opens line-oriented logs for appending after a crash:
// a last line cut short by a power loss or a kill is removed first, so the
// next appended line starts on a line of its own.
package appendfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// Open opens (creating it if needed) the file at path for appending. When
// the file does not end with a newline, the partial last line is truncated
// away first: it was never completely written, so nothing that was
// acknowledged is lost.
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := repair(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("repair %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek %s: %w", path, err)
	}
	return f, nil
}

// repair truncates f after its last newline.
func repair(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	// Walk back in blocks until a newline or the start of the file.
	const block = 4096
	end := size
	buf := make([]byte, block)
	for end > 0 {
		start := max(0, end-block)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && err != io.EOF {
			return err
		}
		chunk := buf[:n]
		if end == size && len(chunk) > 0 && chunk[len(chunk)-1] == '\n' {
			return nil // clean end
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			return truncate(f, start+int64(i)+1)
		}
		end = start
	}
	return truncate(f, 0)
}

func truncate(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}
