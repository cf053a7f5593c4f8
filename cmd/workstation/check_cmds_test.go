package main

import (
	"bytes"
	"context"
	bin "encoding/binary"
	"hash/crc32"
	"image"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/imageio/imagetest"
	"github.com/dmad/workstation/storage"
)

// check, salvage and images rm on a real project file with one damaged mask.
func TestCheckSalvageImagesRm(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.dmad")
	p, err := storage.Create(path, "p")
	if err != nil {
		t.Fatal(err)
	}
	recs := []*storage.ImageRecord{{Path: "/data/a.png"}, {Path: "/data/b.png", Label: storage.LabelAnomalous}}
	if err := p.PutImages(recs); err != nil {
		t.Fatal(err)
	}
	m := image.NewGray(image.Rect(0, 0, 8, 8))
	if err := p.PutMask(recs[1].ID, m); err != nil {
		t.Fatal(err)
	}
	p.Close()
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "XDG_DATA_HOME=" + t.TempDir()}
	if r := cli(t, env, "check", "--project", path); r.code != 0 || !strings.Contains(r.stdout, "ok") {
		t.Fatalf("check of a sound project: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	// Damage the mask's PNG bytes (behind its CRC).
	data, _ := os.ReadFile(path)
	i := strings.Index(string(data), "IHDR")
	data[i+6] ^= 0xff
	os.WriteFile(path, data, 0o644)
	r := cli(t, env, "check", "--project", path)
	if r.code != 1 || !strings.Contains(r.stdout, "mask of image 2: checksum mismatch") {
		t.Fatalf("check of a damaged project: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	out := filepath.Join(dir, "q.dmad")
	if r := cli(t, env, "salvage", "--project", path, "--out", out); r.code != 0 || !strings.Contains(r.stdout, "salvaged 2 images") {
		t.Fatalf("salvage: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, env, "check", "--project", out); r.code != 0 {
		t.Fatalf("check of the salvaged project: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, env, "images", "rm", "--project", out, "/data/a.png", "2"); r.code != 0 || strings.Count(r.stdout, "removed") != 2 {
		t.Fatalf("images rm: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, env, "images", "rm", "--project", out, "/data/none.png"); r.code != 1 || !strings.Contains(r.stderr, "none.png") {
		t.Fatalf("images rm of an unknown image: exit %d %q", r.code, r.stderr)
	}
	q, err := storage.Open(out, storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if left, _ := q.Images(storage.ImageFilter{}); len(left) != 0 {
		t.Fatalf("%d images left after rm", len(left))
	}
}

// Issue 11, defect 10, through the CLI.
func TestBackboneRmCannotLeaveTheStore(t *testing.T) {
	root := t.TempDir()
	store := filepath.Join(root, "store")
	os.MkdirAll(store, 0o755)
	victim := filepath.Join(root, "outside", "victim")
	os.MkdirAll(filepath.Dir(victim), 0o755)
	os.WriteFile(victim+".json", []byte(`{"name":"victim"}`), 0o644)
	os.WriteFile(victim+".onnx", []byte("x"), 0o644)
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "XDG_DATA_HOME=" + t.TempDir()}
	r := cli(t, env, "backbone", "rm", "../outside/victim", "--store", store)
	if r.code == 0 {
		t.Fatalf("rm ../outside/victim succeeded: %q", r.stdout)
	}
	for _, ext := range []string{".json", ".onnx"} {
		if _, err := os.Stat(victim + ext); err != nil {
			t.Fatalf("file outside the store deleted: %v", err)
		}
	}
}

// Issue 11, defect 2: a model file whose bank header claims 2^33 floats
// (checksums recomputed, so the file itself is consistent) imported fine and
// then every later command died out of memory. It is refused at import.
func TestImportModelRefusesLyingBank(t *testing.T) {
	dir := t.TempDir()
	src, err := storage.Create(filepath.Join(dir, "src.dmad"), "src")
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 26)
	copy(hdr, "DMADBANK")
	bin.LittleEndian.PutUint16(hdr[8:], 1)
	hdr[10] = 1
	bin.LittleEndian.PutUint64(hdr[12:], 1<<23)
	bin.LittleEndian.PutUint32(hdr[20:], 1<<10)
	bank := bin.LittleEndian.AppendUint32(hdr, crc32.ChecksumIEEE(hdr))
	bank = append(bank, make([]byte, 64)...)
	err = src.SaveModel(context.Background(), &storage.ModelRecord{BackboneID: "mobilenet_v2_imagenet"}, map[string]io.Reader{
		"meta": strings.NewReader(`{"method":"patchcore"}`), "normal_bank": bytes.NewReader(bank)})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "evil.dmad")
	f, _ := os.Create(file)
	if err := src.ExportModel(context.Background(), 1, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	src.Close()
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "XDG_DATA_HOME=" + t.TempDir()}
	// An existing project: a refused import leaves it without the model (a
	// project the failed command created itself is removed altogether).
	dst := filepath.Join(dir, "dst.dmad")
	pre, err := storage.Create(dst, "dst")
	if err != nil {
		t.Fatal(err)
	}
	pre.Close()
	r := cli(t, env, "import-model", "--project", dst, "--in", file)
	if r.code != 1 || !strings.Contains(r.stderr, "does not decode") || !strings.Contains(r.stderr, "implausible") && !strings.Contains(r.stderr, "remain") {
		t.Fatalf("import of a lying model: exit %d %q", r.code, r.stderr)
	}
	p, err := storage.Open(dst, storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if ms, _ := p.Models(); len(ms) != 0 {
		t.Fatalf("%d models left in the project after a refused import", len(ms))
	}
}

// Issue 11, defects 5 and 6 end to end: eval on a test set of good images
// only writes its JSON with the undefined metrics as null; inspect refuses a
// damaged PNG and a decompression bomb by name, and --skip-bad skips them.
func TestSingleClassEvalAndInspectSkipBad(t *testing.T) {
	data, bb, env := fixture(t)
	// Leave only good test images.
	cats, _ := filepath.Glob(filepath.Join(data, "*", "test"))
	for _, test := range cats {
		dirs, _ := os.ReadDir(test)
		for _, d := range dirs {
			if d.Name() != "good" {
				os.RemoveAll(filepath.Join(test, d.Name()))
			}
		}
		os.RemoveAll(filepath.Join(filepath.Dir(test), "ground_truth"))
	}
	dir := t.TempDir()
	proj := filepath.Join(dir, "p.db")
	r := cli(t, env, append([]string{"train", "--project", proj, "--data", data, "--backbone", bb}, small...)...)
	if r.code != 0 {
		t.Fatalf("train: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	evalJSON := filepath.Join(dir, "eval.json")
	r = cli(t, env, "eval", "--project", proj, "--json", evalJSON, "--quiet", "--threads", "2")
	if r.code != 0 {
		t.Fatalf("eval of a single-class test set: exit %d\n%s", r.code, r.stderr)
	}
	js, err := os.ReadFile(evalJSON)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"image_auroc": null`) || !strings.Contains(string(js), "undefined") {
		t.Fatalf("eval JSON does not mark the undefined metrics: %.600s", js)
	}

	// A folder with a good image, one with a bad CRC in its data, and a bomb.
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	good, _ := filepath.Glob(filepath.Join(data, "*", "test", "good", "*.png"))
	b, _ := os.ReadFile(good[0])
	os.WriteFile(filepath.Join(in, "good.png"), b, 0o644)
	bad := bytes.Clone(b)
	bad[bytes.Index(bad, []byte("IDAT"))+10] ^= 0xff
	os.WriteFile(filepath.Join(in, "badcrc.png"), bad, 0o644)
	os.WriteFile(filepath.Join(in, "bomb.png"), imagetest.BombPNG(100000, 100000), 0o644)
	r = cli(t, env, "inspect", "--project", proj, "--input", in, "--out", filepath.Join(dir, "out1"), "--quiet", "--threads", "2")
	if r.code == 0 || !strings.Contains(r.stderr, "badcrc.png") {
		t.Fatalf("inspect of damaged images: exit %d %q", r.code, r.stderr)
	}
	r = cli(t, env, "inspect", "--project", proj, "--input", in, "--out", filepath.Join(dir, "out2"), "--quiet", "--threads", "2", "--skip-bad")
	if r.code != 0 || !strings.Contains(r.stderr, "badcrc.png") || !strings.Contains(r.stderr, "bomb.png") || !strings.Contains(r.stdout, "1 images") {
		t.Fatalf("inspect --skip-bad: exit %d %q %q", r.code, r.stdout, r.stderr)
	}

	// Damage inside the compressed data under a valid CRC passes the quick
	// check; --full-check decodes it and --skip-bad leaves it out.
	in2 := filepath.Join(dir, "in2")
	os.MkdirAll(in2, 0o755)
	os.WriteFile(filepath.Join(in2, "good.png"), b, 0o644)
	os.WriteFile(filepath.Join(in2, "baddata.png"), damageIDATKeepCRC(t, b), 0o644)
	r = cli(t, env, "inspect", "--project", proj, "--input", in2, "--out", filepath.Join(dir, "out3"), "--quiet", "--threads", "2", "--skip-bad", "--full-check")
	if r.code != 0 || !strings.Contains(r.stderr, "baddata.png") || !strings.Contains(r.stdout, "1 images") {
		t.Fatalf("inspect --skip-bad --full-check: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// damageIDATKeepCRC overwrites a PNG's compressed pixel data and writes a
// valid CRC over it: well formed chunk by chunk, but it does not decode.
func damageIDATKeepCRC(t *testing.T, png []byte) []byte {
	t.Helper()
	out := bytes.Clone(png)
	for i := 8; i+12 <= len(out); {
		n := int(bin.BigEndian.Uint32(out[i:]))
		if string(out[i+4:i+8]) == "IDAT" {
			for j := i + 8; j < i+8+n; j++ {
				out[j] = 0xAA
			}
			bin.BigEndian.PutUint32(out[i+8+n:], crc32.ChecksumIEEE(out[i+4:i+8+n]))
			return out
		}
		i += 12 + n
	}
	t.Fatal("no IDAT chunk")
	return nil
}
