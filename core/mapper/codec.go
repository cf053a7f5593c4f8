package mapper

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/dmad/workstation/core/mat"
)

// Model bytes: "DMADMAP\x00", a uint32 format version, the payload, and the
// CRC-32 (IEEE) of everything before it. All numbers are little-endian.
var magic = [8]byte{'D', 'M', 'A', 'D', 'M', 'A', 'P', 0}

// FormatVersion is the version of the model bytes MarshalBinary writes.
const FormatVersion = 1

type encoder struct{ buf bytes.Buffer }

func (e *encoder) u32(v uint32)  { _ = binary.Write(&e.buf, binary.LittleEndian, v) }
func (e *encoder) f32(v float32) { e.u32(math.Float32bits(v)) }
func (e *encoder) str(s string)  { e.u32(uint32(len(s))); e.buf.WriteString(s) }
func (e *encoder) flag(v bool) {
	if v {
		e.u32(1)
	} else {
		e.u32(0)
	}
}
func (e *encoder) tensor(name string, data []float32) {
	e.str(name)
	e.u32(uint32(len(data)))
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	e.buf.Write(raw)
}

// MarshalBinary encodes the model: configuration, every tensor,
// standardisation and provenance strings, with a version header and a
// CRC-32 trailer.
func (m *Model) MarshalBinary() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	var e encoder
	e.buf.Write(magic[:])
	e.u32(FormatVersion)
	c := m.Config
	e.u32(uint32(c.C))
	e.u32(uint32(c.Hidden))
	e.flag(c.Distances)
	e.f32(c.Slope)
	e.f32(c.BNEps)
	e.f32(c.BNMomentum)
	e.flag(c.ProjIdentity)
	e.flag(c.PatchCoreInit)
	e.str(m.Backbone)
	e.u32(uint32(len(m.BankIDs)))
	for _, id := range m.BankIDs {
		e.str(id)
	}
	e.f32(m.Std.QScale)
	e.f32(m.Std.KScale)
	e.f32(m.Std.DMean)
	e.f32(m.Std.DScale)
	e.tensor("QMean", m.Std.QMean)
	for _, p := range m.Params() {
		e.tensor(p.Name, p.Data)
	}
	e.tensor("RunMean", m.RunMean)
	e.tensor("RunVar", m.RunVar)
	e.u32(crc32.ChecksumIEEE(e.buf.Bytes()))
	return e.buf.Bytes(), nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errors.New("truncated")
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}
func (d *decoder) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}
func (d *decoder) f32() float32 { return math.Float32frombits(d.u32()) }
func (d *decoder) flag() bool   { return d.u32() != 0 }
func (d *decoder) str() string  { return string(d.take(int(d.u32()))) }
func (d *decoder) tensor(name string, want int) []float32 {
	got := d.str()
	n := int(d.u32())
	if d.err != nil {
		return nil
	}
	if got != name || n != want {
		d.err = fmt.Errorf("tensor %q with %d values where %q with %d was expected", got, n, name, want)
		return nil
	}
	raw := d.take(4 * n)
	if raw == nil {
		return nil
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// UnmarshalBinary decodes model bytes written by MarshalBinary, checking
// the header, the version and the checksum.
func (m *Model) UnmarshalBinary(data []byte) error {
	if len(data) < len(magic)+8 || !bytes.Equal(data[:len(magic)], magic[:]) {
		return errors.New("decode mapper model: not DMAD mapper bytes")
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return errors.New("decode mapper model: checksum mismatch (corrupt or truncated)")
	}
	d := &decoder{b: body[len(magic):]}
	if v := d.u32(); v != FormatVersion {
		return fmt.Errorf("decode mapper model: format version %d, this build reads %d", v, FormatVersion)
	}
	var c Config
	c.C = int(d.u32())
	c.Hidden = int(d.u32())
	c.Distances = d.flag()
	c.Slope, c.BNEps, c.BNMomentum = d.f32(), d.f32(), d.f32()
	c.ProjIdentity = d.flag()
	c.PatchCoreInit = d.flag()
	if d.err == nil {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("decode mapper model: %w", err)
		}
		if c.C > 1<<16 || c.Hidden > 1<<20 {
			return fmt.Errorf("decode mapper model: implausible sizes C=%d H=%d", c.C, c.Hidden)
		}
	}
	out := Model{Config: c}
	out.Backbone = d.str()
	nb := int(d.u32())
	if nb > len(d.b) {
		d.err = errors.New("truncated")
	}
	for i := 0; i < nb && d.err == nil; i++ {
		out.BankIDs = append(out.BankIDs, d.str())
	}
	out.Std.QScale, out.Std.KScale, out.Std.DMean, out.Std.DScale = d.f32(), d.f32(), d.f32(), d.f32()
	out.Std.QMean = d.tensor("QMean", c.C)
	cc, dd, h := c.C, c.InDim(), c.Hidden
	p := d.tensor("P", cc*cc)
	out.PBias = d.tensor("PBias", cc)
	w1 := d.tensor("W1", dd*h)
	out.B1 = d.tensor("B1", h)
	out.Gamma = d.tensor("Gamma", h)
	out.Beta = d.tensor("Beta", h)
	out.W2 = d.tensor("W2", h)
	out.RunMean = d.tensor("RunMean", h)
	out.RunVar = d.tensor("RunVar", h)
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("decode mapper model: %w", d.err)
	}
	var err error
	if out.P, err = mat.FromData(cc, cc, p); err != nil {
		return fmt.Errorf("decode mapper model: P: %w", err)
	}
	if out.W1, err = mat.FromData(dd, h, w1); err != nil {
		return fmt.Errorf("decode mapper model: W1: %w", err)
	}
	*m = out
	return nil
}
