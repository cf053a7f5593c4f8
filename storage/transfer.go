package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Model file layout (ExportModel/ImportModel): the magic line, the header
// length (uint32 BE), the header JSON, its CRC-32C (uint32 BE), then each
// part's bytes in header order (sorted by name). Every part's size and SHA-256
// are in the header and checked on import.
var modelFileMagic = []byte("DMAD-MODEL 1\n")

// maxModelHeader bounds the header so a foreign file cannot make us allocate much.
const maxModelHeader = 16 << 20

// modelFileHeader is the self-describing header of a model file.
type modelFileHeader struct {
	Format   int         `json:"format"`
	Exported time.Time   `json:"exported"`
	Project  string      `json:"project"`
	Model    ModelRecord `json:"model"`
}

// ExportModel writes model version and all its parts to w as one
// self-describing file. Damaged parts make it fail (checksums are verified
// while streaming).
func (p *Project) ExportModel(ctx context.Context, version int, w io.Writer) error {
	rec, err := p.Model(version)
	if err != nil {
		return fmt.Errorf("export model: %w", err)
	}
	slices.SortFunc(rec.Parts, func(a, b BlobInfo) int { return strings.Compare(a.Name, b.Name) })
	name, _ := p.Name()
	hdr, err := json.Marshal(modelFileHeader{Format: 1, Exported: time.Now().UTC(), Project: name, Model: rec})
	if err != nil {
		return fmt.Errorf("export model %d: %w", version, err)
	}
	var pre bytes.Buffer
	pre.Write(modelFileMagic)
	binary.Write(&pre, binary.BigEndian, uint32(len(hdr)))
	pre.Write(hdr)
	binary.Write(&pre, binary.BigEndian, crc32.Checksum(hdr, castagnoli))
	if _, err := w.Write(pre.Bytes()); err != nil {
		return fmt.Errorf("export model %d: %w", version, err)
	}
	for _, part := range rec.Parts {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("export model %d: %w", version, err)
		}
		br, err := p.OpenModelPart(version, part.Name)
		if err != nil {
			return fmt.Errorf("export model %d: %w", version, err)
		}
		n, err := io.Copy(w, br)
		br.Close()
		if err != nil {
			return fmt.Errorf("export model %d part %s: %w", version, part.Name, err)
		}
		if n != part.Size {
			return fmt.Errorf("export model %d part %s: %d bytes, record says %d", version, part.Name, n, part.Size)
		}
	}
	return nil
}

// ImportModel reads a file written by ExportModel and stores it as a new
// model version (not active) in one transaction, returning the version. A
// model trained on another backbone than the project's is refused, as is a
// file whose parts do not match their checksums.
func (p *Project) ImportModel(ctx context.Context, r io.Reader) (int, error) {
	hdr, err := readModelFileHeader(r)
	if err != nil {
		return 0, fmt.Errorf("import model: %w", err)
	}
	rec := hdr.Model
	if bb := p.Settings().Backbone; bb != "" && rec.BackboneID != bb {
		return 0, fmt.Errorf("import model: the model was trained on backbone %q but project %s uses backbone %q", rec.BackboneID, p.path, bb)
	}
	want := rec.Parts
	if !slices.IsSortedFunc(want, func(a, b BlobInfo) int { return strings.Compare(a.Name, b.Name) }) {
		return 0, errors.New("import model: parts not in name order")
	}
	parts := make(map[string]io.Reader, len(want))
	for _, part := range want {
		if _, dup := parts[part.Name]; dup || part.Name == "" {
			return 0, fmt.Errorf("import model: bad part name %q", part.Name)
		}
		// SaveModel writes parts in name order, the order they follow in the stream.
		parts[part.Name] = io.LimitReader(r, part.Size)
	}
	rec.Origin = fmt.Sprintf("imported %s: version %d of project %q", time.Now().UTC().Format(time.RFC3339), rec.Version, hdr.Project)
	rec.Version, rec.Active, rec.Parts = 0, false, nil
	err = p.update(func(tx *bolt.Tx) error {
		if err := saveModelTx(ctx, tx, &rec, parts, p.chunkSize()); err != nil {
			return err
		}
		for i, got := range rec.Parts {
			if got.Size != want[i].Size {
				return fmt.Errorf("part %s: %d bytes, header says %d (truncated file?)", got.Name, got.Size, want[i].Size)
			}
			if got.SHA256 != want[i].SHA256 {
				return fmt.Errorf("part %s: checksum mismatch", got.Name)
			}
		}
		return nil
	}, bktModels)
	if err != nil {
		return 0, fmt.Errorf("import model: %w", err)
	}
	return rec.Version, nil
}

func readModelFileHeader(r io.Reader) (modelFileHeader, error) {
	var hdr modelFileHeader
	magic := make([]byte, len(modelFileMagic))
	if _, err := io.ReadFull(r, magic); err != nil || !bytes.Equal(magic, modelFileMagic) {
		return hdr, errors.New("not a workstation model file")
	}
	var n uint32
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		return hdr, fmt.Errorf("header length: %w", err)
	}
	if n > maxModelHeader {
		return hdr, fmt.Errorf("header of %d bytes is implausible", n)
	}
	// Read what is there rather than allocate what the length claims.
	js, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return hdr, fmt.Errorf("header: %w", err)
	}
	if len(js) != int(n) {
		return hdr, fmt.Errorf("header: %w (file ends after %d of %d bytes)", io.ErrUnexpectedEOF, len(js), n)
	}
	var sum uint32
	if err := binary.Read(r, binary.BigEndian, &sum); err != nil {
		return hdr, fmt.Errorf("header checksum: %w", err)
	}
	if sum != crc32.Checksum(js, castagnoli) {
		return hdr, errors.New("header checksum mismatch")
	}
	if err := json.Unmarshal(js, &hdr); err != nil {
		return hdr, fmt.Errorf("header: %w", err)
	}
	if hdr.Format != 1 {
		return hdr, fmt.Errorf("model file format %d is not supported (want 1); upgrade", hdr.Format)
	}
	return hdr, nil
}
