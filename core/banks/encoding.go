package banks

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"

	"github.com/dmad/workstation/core/mat"
)

// Bank bytes (little-endian):
//
//	magic    [8]byte "DMADBANK"
//	version  uint16  (1)
//	kind     uint8   (1 normal, 2 anomaly)
//	flags    uint8   (bit 0: normal bank has category ids)
//	rows     uint64
//	cols     uint32
//	idLen    uint16, then idLen bytes: the backbone id
//	hdrCRC   uint32  CRC-32 (IEEE) of the header bytes above
//	features rows·cols float32
//	normal:  source rows·int32, then category rows·int32 if flagged
//	anomaly: kind rows·uint8, then source rows·int32
//	crc      uint32  CRC-32 (IEEE) of everything before it
//
// The header has its own CRC so a corrupt size is caught before anything
// is allocated.
const (
	bankMagic   = "DMADBANK"
	bankVersion = 1
	kindNormal  = 1
	kindAnomaly = 2
	flagCat     = 1
	fixedHeader = 8 + 2 + 1 + 1 + 8 + 4 + 2
	// maxBankValues bounds rows·cols accepted from a header (64 GiB of floats).
	maxBankValues = 1 << 34
)

// ErrCorrupt is wrapped by every error about malformed bank bytes.
var ErrCorrupt = errors.New("corrupt bank data")

// MarshalBinary encodes the bank (format above).
func (b *NormalBank) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary decodes bytes written by MarshalBinary or WriteTo; on
// error b is left as it was.
func (b *NormalBank) UnmarshalBinary(data []byte) error {
	var tmp NormalBank
	n, err := tmp.ReadFrom(bytes.NewReader(data))
	if err != nil {
		return err
	}
	if int(n) != len(data) {
		return fmt.Errorf("normal bank: %d trailing bytes: %w", len(data)-int(n), ErrCorrupt)
	}
	*b = tmp
	return nil
}

// WriteTo streams the bank to w (storage chunks large banks this way).
func (b *NormalBank) WriteTo(w io.Writer) (int64, error) {
	if err := b.Validate(); err != nil {
		return 0, fmt.Errorf("write %w", err)
	}
	var flags uint8
	if b.Category != nil {
		flags |= flagCat
	}
	bw := newBankWriter(w)
	bw.header(kindNormal, flags, b.Features, b.Backbone)
	bw.floats(b.Features.RawData())
	bw.int32s(b.Source)
	if b.Category != nil {
		bw.int32s(b.Category)
	}
	n, err := bw.finish()
	if err != nil {
		return n, fmt.Errorf("write normal bank: %w", err)
	}
	return n, nil
}

// ReadFrom reads one bank written by WriteTo from r, replacing b's
// contents. It reads exactly the bank's bytes (r may hold more after it).
func (b *NormalBank) ReadFrom(r io.Reader) (int64, error) {
	br := newBankReader(r)
	flags, rows, cols, id, err := br.header(kindNormal)
	if err != nil {
		return br.n, fmt.Errorf("read normal bank: %w", err)
	}
	perRow := int64(4)
	if flags&flagCat != 0 {
		perRow = 8
	}
	if err := br.fits(rows, cols, perRow); err != nil {
		return br.n, fmt.Errorf("read normal bank: %w", err)
	}
	data := br.floats(rows * cols)
	nb := &NormalBank{Backbone: id}
	nb.Source = br.int32s(rows)
	if flags&flagCat != 0 {
		nb.Category = br.int32s(rows)
	}
	if err := br.finish(); err != nil {
		return br.n, fmt.Errorf("read normal bank: %w", err)
	}
	if nb.Features, err = mat.FromData(rows, cols, data); err != nil {
		return br.n, fmt.Errorf("read normal bank: %w", err)
	}
	*b = *nb
	return br.n, nil
}

// MarshalBinary encodes the bank (format above).
func (b *AnomalyBank) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary decodes bytes written by MarshalBinary or WriteTo; on
// error b is left as it was.
func (b *AnomalyBank) UnmarshalBinary(data []byte) error {
	var tmp AnomalyBank
	n, err := tmp.ReadFrom(bytes.NewReader(data))
	if err != nil {
		return err
	}
	if int(n) != len(data) {
		return fmt.Errorf("anomaly bank: %d trailing bytes: %w", len(data)-int(n), ErrCorrupt)
	}
	*b = tmp
	return nil
}

// WriteTo streams the bank to w.
func (b *AnomalyBank) WriteTo(w io.Writer) (int64, error) {
	if err := b.Validate(); err != nil {
		return 0, fmt.Errorf("write %w", err)
	}
	bw := newBankWriter(w)
	bw.header(kindAnomaly, 0, b.Features, b.Backbone)
	bw.floats(b.Features.RawData())
	bw.write(b.Kind)
	if b.Source != nil {
		bw.int32s(b.Source)
	} else {
		none := make([]int32, b.Features.Rows())
		for i := range none {
			none[i] = NoSource
		}
		bw.int32s(none)
	}
	n, err := bw.finish()
	if err != nil {
		return n, fmt.Errorf("write anomaly bank: %w", err)
	}
	return n, nil
}

// ReadFrom reads one bank written by WriteTo from r, replacing b's contents.
func (b *AnomalyBank) ReadFrom(r io.Reader) (int64, error) {
	br := newBankReader(r)
	_, rows, cols, id, err := br.header(kindAnomaly)
	if err != nil {
		return br.n, fmt.Errorf("read anomaly bank: %w", err)
	}
	if err := br.fits(rows, cols, 5); err != nil {
		return br.n, fmt.Errorf("read anomaly bank: %w", err)
	}
	data := br.floats(rows * cols)
	nb := &AnomalyBank{Backbone: id, Kind: br.bytes(rows)}
	nb.Source = br.int32s(rows)
	if err := br.finish(); err != nil {
		return br.n, fmt.Errorf("read anomaly bank: %w", err)
	}
	if nb.Features, err = mat.FromData(rows, cols, data); err != nil {
		return br.n, fmt.Errorf("read anomaly bank: %w", err)
	}
	for i, k := range nb.Kind {
		if k < KindPseudo || k > KindCentred {
			return br.n, fmt.Errorf("read anomaly bank: entry %d has unknown kind %d: %w", i, k, ErrCorrupt)
		}
	}
	*b = *nb
	return br.n, nil
}

// bankWriter writes through a buffer and a running CRC, keeping the first
// error.
type bankWriter struct {
	w   *bufio.Writer
	crc hash.Hash32
	n   int64
	err error
	buf []byte
}

func newBankWriter(w io.Writer) *bankWriter {
	return &bankWriter{w: bufio.NewWriterSize(w, 1<<16), crc: crc32.NewIEEE(), buf: make([]byte, 1<<16)}
}

func (bw *bankWriter) write(p []byte) {
	if bw.err != nil {
		return
	}
	bw.crc.Write(p)
	n, err := bw.w.Write(p)
	bw.n += int64(n)
	bw.err = err
}

func (bw *bankWriter) header(kind, flags uint8, m *mat.Matrix, id string) {
	if len(id) > math.MaxUint16 {
		id = id[:math.MaxUint16]
	}
	h := make([]byte, fixedHeader, fixedHeader+len(id)+4)
	copy(h, bankMagic)
	binary.LittleEndian.PutUint16(h[8:], bankVersion)
	h[10], h[11] = kind, flags
	binary.LittleEndian.PutUint64(h[12:], uint64(m.Rows()))
	binary.LittleEndian.PutUint32(h[20:], uint32(m.Cols()))
	binary.LittleEndian.PutUint16(h[24:], uint16(len(id)))
	h = append(h, id...)
	h = binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(h))
	bw.write(h)
}

func (bw *bankWriter) floats(v []float32) {
	for len(v) > 0 && bw.err == nil {
		n := min(len(v), len(bw.buf)/4)
		for i, x := range v[:n] {
			binary.LittleEndian.PutUint32(bw.buf[4*i:], math.Float32bits(x))
		}
		bw.write(bw.buf[:4*n])
		v = v[n:]
	}
}

func (bw *bankWriter) int32s(v []int32) {
	for len(v) > 0 && bw.err == nil {
		n := min(len(v), len(bw.buf)/4)
		for i, x := range v[:n] {
			binary.LittleEndian.PutUint32(bw.buf[4*i:], uint32(x))
		}
		bw.write(bw.buf[:4*n])
		v = v[n:]
	}
}

func (bw *bankWriter) finish() (int64, error) {
	if bw.err == nil {
		sum := binary.LittleEndian.AppendUint32(nil, bw.crc.Sum32())
		n, err := bw.w.Write(sum)
		bw.n += int64(n)
		bw.err = err
	}
	if bw.err == nil {
		bw.err = bw.w.Flush()
	}
	return bw.n, bw.err
}

// bankReader reads through a running CRC, keeping the first error; a short
// read is reported as truncation.
//
// Sizes come from the (untrusted) header, so nothing is allocated from them
// alone: when the source's length is known (a byte slice) the header's claim
// is checked against it first; otherwise arrays grow only as bytes actually
// arrive, so a lying header costs at most what the source really holds.
type bankReader struct {
	r    io.Reader
	crc  hash.Hash32
	n    int64
	size int64 // total bytes the source holds (n included); -1 unknown
	err  error
	buf  []byte
}

// growStep is how many values an array of unknown true length grows by
// before the bytes for them have been read.
const growStep = 1 << 18

func newBankReader(r io.Reader) *bankReader {
	br := &bankReader{r: r, crc: crc32.NewIEEE(), size: -1}
	if l, ok := r.(interface{ Len() int }); ok {
		br.size = int64(l.Len())
	}
	return br
}

// fits checks that rows·cols float32 plus perRow bytes per row plus the
// trailing CRC fit in what the source holds, when that is known.
func (br *bankReader) fits(rows, cols int, perRow int64) error {
	need := int64(rows)*int64(cols)*4 + int64(rows)*perRow + 4
	if br.size >= 0 && need > br.size-br.n {
		return fmt.Errorf("header claims %d×%d (%d more bytes) but only %d remain: %w", rows, cols, need, br.size-br.n, ErrCorrupt)
	}
	return nil
}

func (br *bankReader) read(p []byte) {
	if br.err != nil {
		return
	}
	n, err := io.ReadFull(br.r, p)
	br.n += int64(n)
	br.crc.Write(p[:n])
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("truncated after %d bytes: %w", br.n, ErrCorrupt)
		}
		br.err = err
	}
}

func (br *bankReader) header(want uint8) (flags uint8, rows, cols int, id string, err error) {
	h := make([]byte, fixedHeader)
	br.read(h)
	if br.err != nil {
		return 0, 0, 0, "", br.err
	}
	if string(h[:8]) != bankMagic {
		return 0, 0, 0, "", fmt.Errorf("not a bank (magic %q): %w", h[:8], ErrCorrupt)
	}
	idb := make([]byte, binary.LittleEndian.Uint16(h[24:]))
	br.read(idb)
	sum := make([]byte, 4)
	hdrCRC := crc32.Update(crc32.ChecksumIEEE(h), crc32.IEEETable, idb)
	br.read(sum)
	if br.err != nil {
		return 0, 0, 0, "", br.err
	}
	if binary.LittleEndian.Uint32(sum) != hdrCRC {
		return 0, 0, 0, "", fmt.Errorf("header checksum mismatch: %w", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint16(h[8:]); v != bankVersion {
		return 0, 0, 0, "", fmt.Errorf("unsupported bank version %d (this build reads %d)", v, bankVersion)
	}
	if h[10] != want {
		names := map[uint8]string{kindNormal: "normal", kindAnomaly: "anomaly"}
		return 0, 0, 0, "", fmt.Errorf("bank holds a %s bank, want %s: %w", names[h[10]], names[want], ErrCorrupt)
	}
	r, c := binary.LittleEndian.Uint64(h[12:]), uint64(binary.LittleEndian.Uint32(h[20:]))
	if c == 0 && r > 0 || r > maxBankValues || c > maxBankValues || r*c > maxBankValues {
		return 0, 0, 0, "", fmt.Errorf("implausible size %d×%d: %w", r, c, ErrCorrupt)
	}
	return h[11], int(r), int(c), string(idb), nil
}

// initialCap is the capacity to start an n-value array with: all of it when
// the source's length has been checked (see fits), else one growth step.
func (br *bankReader) initialCap(n int) int {
	if br.size >= 0 {
		return n
	}
	return min(n, growStep)
}

func (br *bankReader) chunkBuf() []byte {
	if br.buf == nil {
		br.buf = make([]byte, 1<<16)
	}
	return br.buf
}

// floats reads n float32 values.
func (br *bankReader) floats(n int) []float32 {
	out := make([]float32, 0, br.initialCap(n))
	buf := br.chunkBuf()
	for len(out) < n && br.err == nil {
		k := min(n-len(out), len(buf)/4)
		br.read(buf[:4*k])
		for i := range k {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:])))
		}
	}
	return out
}

// int32s reads n int32 values.
func (br *bankReader) int32s(n int) []int32 {
	out := make([]int32, 0, br.initialCap(n))
	buf := br.chunkBuf()
	for len(out) < n && br.err == nil {
		k := min(n-len(out), len(buf)/4)
		br.read(buf[:4*k])
		for i := range k {
			out = append(out, int32(binary.LittleEndian.Uint32(buf[4*i:])))
		}
	}
	return out
}

// bytes reads n bytes.
func (br *bankReader) bytes(n int) []byte {
	out := make([]byte, 0, br.initialCap(n))
	buf := br.chunkBuf()
	for len(out) < n && br.err == nil {
		k := min(n-len(out), len(buf))
		br.read(buf[:k])
		out = append(out, buf[:k]...)
	}
	return out
}

func (br *bankReader) finish() error {
	if br.err != nil {
		return br.err
	}
	want := br.crc.Sum32()
	sum := make([]byte, 4)
	br.read(sum)
	if br.err != nil {
		return br.err
	}
	if binary.LittleEndian.Uint32(sum) != want {
		return fmt.Errorf("checksum mismatch: %w", ErrCorrupt)
	}
	return nil
}
