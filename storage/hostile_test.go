package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// filledProject writes a project with images, masks, a blob of several
// chunks and a model, closes it and returns its path.
func filledProject(t testing.TB, masks int) string {
	t.Helper()
	p := newProject(t)
	p.chunk = 8 << 10
	ctx := context.Background()
	var recs []*ImageRecord
	for i := range masks {
		recs = append(recs, &ImageRecord{Path: filepath.Join("/data", "img", strings.Repeat("x", i%7)+string(rune('a'+i%26))+".png"),
			Category: "bottle", Split: SplitTest, Label: LabelAnomalous})
		_ = i
	}
	if err := p.PutImages(recs); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		m := image.NewGray(image.Rect(0, 0, 16, 16))
		m.Pix[int(r.ID)%256] = 255
		if err := p.PutMask(r.ID, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.PutBlob(ctx, "banks", "normal", bytes.NewReader(randBytes(3, 40<<10))); err != nil {
		t.Fatal(err)
	}
	parts := map[string]io.Reader{PartNormalBank: bytes.NewReader(randBytes(4, 20<<10)), PartMapper: bytes.NewReader(randBytes(5, 3000))}
	if err := p.SaveModel(ctx, &ModelRecord{BackboneID: "b", Active: true}, parts); err != nil {
		t.Fatal(err)
	}
	path := p.Path()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// usedBytes is how much of the bbolt file at path its header accounts for
// (bbolt grows files ahead of use, so the tail may be unused).
func usedBytes(t testing.TB, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, ok := readBoltMeta(f, 0)
	if m1, ok1 := readBoltMeta(f, 4096); ok1 && (!ok || m1.txid > m.txid) {
		m, ok = m1, true
	}
	if !ok {
		t.Fatal("no valid meta page")
	}
	return int64(m.pgid) * int64(m.pageSize)
}

// mustBeDamaged fails unless err reports damage and names the file.
func mustBeDamaged(t *testing.T, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Fatalf("want an ErrDamaged error naming %s, got %v", path, err)
	}
}

// Defect 3: a project cut short died of SIGBUS on the first read.
func TestTruncatedProjectIsRefused(t *testing.T) {
	for _, cut := range []string{"half", "1MiB-of-larger", "one-page"} {
		t.Run(cut, func(t *testing.T) {
			path := filledProject(t, 40)
			size := usedBytes(t, path) / 2
			switch cut {
			case "1MiB-of-larger":
				p, _ := Open(path, Options{})
				p.PutBlob(context.Background(), "banks", "big", bytes.NewReader(randBytes(9, 3<<20)))
				p.Close()
				size = 1 << 20
			case "one-page":
				size = 4096
			}
			if err := os.Truncate(path, size); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path, Options{})
			mustBeDamaged(t, err, path)
			if !strings.Contains(err.Error(), "truncated") && cut != "one-page" {
				t.Fatalf("error does not say truncated: %v", err)
			}
			rep, err := CheckFile(context.Background(), path)
			if err != nil || rep.OK() {
				t.Fatalf("check of a truncated file: ok=%v err=%v", rep.OK(), err)
			}
		})
	}
}

// Defect 3: a bbolt file holding only meta/schema_version=2 crashed with a
// nil pointer in readSettings.
func TestForeignBoltFileWithOnlySchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fake.dmad")
	db, err := bolt.Open(path, 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket(bktMeta)
		return b.Put(keySchema, []byte("2"))
	})
	db.Close()
	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: ro})
		mustBeDamaged(t, err, path)
		if !strings.Contains(err.Error(), "settings") {
			t.Fatalf("error does not name the missing bucket: %v", err)
		}
	}
}

// maskKeyOffset finds where the key of image id's mask lies in the file: the
// 8-byte key, then the 4-byte CRC and the PNG signature of the value.
func maskKeyOffset(t *testing.T, data []byte, id uint64) int {
	t.Helper()
	k := idKey(id)
	for off := 0; ; {
		i := bytes.Index(data[off:], k)
		if i < 0 {
			t.Fatalf("mask %d not found in the file", id)
		}
		i += off
		if i+16 <= len(data) && string(data[i+13:i+16]) == "PNG" {
			return i
		}
		off = i + 1
	}
}

// Defect 1: a flipped byte in a b-tree page hid a mask and eval answered
// with it silently missing. The open must fail, naming the damage.
func TestKeyOrderDamageIsDetectedOnOpen(t *testing.T) {
	path := filledProject(t, 120)
	data, _ := os.ReadFile(path)
	i := maskKeyOffset(t, data, 60)
	data[i] = 0x7f // key 60 now sorts after every other key: lookups miss it
	os.WriteFile(path, data, 0o644)
	// Show the damage is real: bbolt itself no longer finds the mask.
	db, _ := bolt.Open(path, 0o644, &bolt.Options{ReadOnly: true})
	db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bktMasks).Get(idKey(60)) != nil {
			t.Fatal("the test did not hide the mask")
		}
		return nil
	})
	db.Close()
	_, err := Open(path, Options{ReadOnly: true})
	mustBeDamaged(t, err, path)
	if !strings.Contains(err.Error(), "masks") {
		t.Fatalf("error does not name the bucket: %v", err)
	}
	rep, _ := CheckFile(context.Background(), path)
	if rep.OK() {
		t.Fatal("check found nothing")
	}
}

// Defect 1: a key that vanished (here deleted behind the manifest's back,
// as a lost page would) is caught by the manifest's counts on open.
func TestVanishedKeyIsDetectedOnOpen(t *testing.T) {
	path := filledProject(t, 30)
	db, _ := bolt.Open(path, 0o644, nil)
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktMasks).Delete(idKey(7)) })
	db.Close()
	_, err := Open(path, Options{})
	mustBeDamaged(t, err, path)
	if !strings.Contains(err.Error(), "masks holds 29 keys") {
		t.Fatalf("error does not give the count: %v", err)
	}
}

// Defect 3: corrupted pages made bbolt panic ("slice bounds out of range",
// "Page expected", "zero-length inode key" inside a write). Every byte
// pattern must give an error or a working project, never a crash.
func TestCorruptPagesNeverCrash(t *testing.T) {
	path := filledProject(t, 60)
	clean, _ := os.ReadFile(path)
	used := usedBytes(t, path)
	rng := rand.New(rand.NewPCG(1, 2))
	trials := 80
	if testing.Short() {
		trials = 30
	}
	detected := 0
	for trial := range trials {
		data := bytes.Clone(clean)
		page := 2 + rng.IntN(int(used/4096)-2)
		for range 1 + rng.IntN(8) {
			data[page*4096+rng.IntN(4096)] = byte(rng.Uint32())
		}
		os.WriteFile(path, data, 0o644)
		if exerciseProject(t, path) != nil {
			detected++
		}
		_ = trial
	}
	t.Logf("%d/%d damaged files refused or reported an error", detected, trials)
	if detected == 0 {
		t.Fatal("no damage detected at all: the test proves nothing")
	}
}

// exerciseProject opens path, reads everything and writes once; it returns
// the first error. A panic escaping storage fails the test.
func exerciseProject(t *testing.T, path string) (first error) {
	t.Helper()
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("storage let a panic escape: %v", r)
		}
	}()
	os.Remove(path + ".lock-info")
	p, err := Open(path, Options{})
	if err != nil {
		return err
	}
	defer p.Close()
	imgs, err := p.Images(ImageFilter{})
	keep(err)
	for _, r := range imgs {
		_, err := p.Mask(r.ID)
		keep(err)
	}
	_, err = p.Models()
	keep(err)
	keep(p.VerifyBlob("banks", "normal"))
	keep(p.PutMask(999, image.NewGray(image.Rect(0, 0, 4, 4))))
	keep(p.DeleteImage(1))
	keep(p.Verify())
	return first
}

// check and salvage: a damaged file is reported by CheckFile; Salvage copies
// the rest into a project that opens and passes CheckFile.
func TestCheckAndSalvage(t *testing.T) {
	ctx := context.Background()
	path := filledProject(t, 80)
	rep, err := CheckFile(ctx, path)
	if err != nil || !rep.OK() || rep.Blobs < 3 || rep.Masks != 80 {
		t.Fatalf("clean project: %+v, %v", rep, err)
	}
	// Damage one chunk of the normal blob and one mask's PNG bytes.
	data, _ := os.ReadFile(path)
	i := maskKeyOffset(t, data, 20)
	data[i+30] ^= 0xff
	os.WriteFile(path, data, 0o644)
	p, _ := Open(path, Options{})
	p.Close()
	flipAt(t, path, randBytes(3, 40<<10)[9000:9064])
	rep, err = CheckFile(ctx, path)
	if err != nil || rep.OK() {
		t.Fatalf("damaged project passed the check: %+v, %v", rep, err)
	}
	text := strings.Join(rep.Problems, "\n")
	if !strings.Contains(text, "banks/normal") || !strings.Contains(text, "mask of image 20") {
		t.Fatalf("check does not name the damaged things:\n%s", text)
	}
	out := filepath.Join(t.TempDir(), "salvaged.dmad")
	srep, err := Salvage(ctx, path, out)
	if err != nil {
		t.Fatal(err)
	}
	if srep.Copied["masks"] != 80 || len(srep.Dropped) != 2 || srep.Copied["images"] != 80 {
		t.Fatalf("salvage: %+v", srep)
	}
	rep, err = CheckFile(ctx, out)
	if err != nil || !rep.OK() {
		t.Fatalf("salvaged project fails its check: %+v, %v", rep, err)
	}
	q, err := Open(out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Mask(20); !errors.Is(err, ErrNotFound) {
		t.Fatalf("damaged mask survived salvage: %v", err)
	}
	if _, err := q.Mask(21); err != nil {
		t.Fatal(err)
	}
	if act, err := q.ActiveModel(); err != nil || len(act.Parts) != 2 {
		t.Fatalf("intact model lost in salvage: %+v %v", act, err)
	}
}

// A file cut short while open (another process, a sync tool) makes the
// mapping fault on the next read: SIGBUS used to kill the process; it is an
// error naming the file.
func TestFileTruncatedWhileOpenFaultsIntoAnError(t *testing.T) {
	path := filledProject(t, 20)
	p, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := os.Truncate(path, 8192); err != nil {
		t.Fatal(err)
	}
	err = p.VerifyBlob("banks", "normal")
	mustBeDamaged(t, err, path)
	if _, err := p.Images(ImageFilter{}); err == nil {
		t.Fatal("reading a truncated mapping succeeded")
	}
}

// After an unclean end (the lock-info file names a process of this host
// that no longer runs), Open runs bbolt's full page check before going on.
func TestUncleanEndRunsPageCheck(t *testing.T) {
	path := filledProject(t, 10)
	os.WriteFile(path+".lock-info", []byte(`{"pid":999999999,"host":"`+hostname()+`"}`), 0o644)
	var logs bytes.Buffer
	p, err := Open(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if !strings.Contains(logs.String(), "not closed cleanly") {
		t.Fatalf("no page check after an unclean end; log: %s", logs.String())
	}
	// A clean close leaves no side file, so the next open skips the check.
	logs.Reset()
	p, err = Open(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if strings.Contains(logs.String(), "not closed cleanly") {
		t.Fatal("page check after a clean close")
	}
}

// A damaged free list used to panic inside bbolt's Open after it had locked
// and mapped the file: the guard turned the panic into an error, but the
// lost mapping kept the lock, so every later open of the file in the same
// process (the GUI reopening it) waited a second and failed "locked".
func TestDamagedFreelistIsRefusedWithoutKeepingTheLock(t *testing.T) {
	path := filledProject(t, 2)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	m, ok := readBoltMeta(f, 0)
	if m1, ok1 := readBoltMeta(f, 4096); ok1 && (!ok || m1.txid > m.txid) {
		m = m1
	}
	f.Close()
	cases := []struct {
		name   string
		damage func(b []byte)
		want   string
	}{
		{"page type", func(b []byte) { b[int64(m.freelist)*4096+8] = 0x02 }, "not a free list"},
		{"count", func(b []byte) { binary.NativeEndian.PutUint16(b[int64(m.freelist)*4096+10:], 0xFFFE) }, "more than it can hold"},
		{"overflow", func(b []byte) { binary.NativeEndian.PutUint32(b[int64(m.freelist)*4096+12:], 1<<20) }, "past the file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := append([]byte(nil), good...)
			c.damage(bad)
			os.WriteFile(path, bad, 0o644)
			for _, ro := range []bool{true, false} {
				_, err := Open(path, Options{ReadOnly: ro, LockTimeout: 50 * time.Millisecond})
				if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("read-only %v: want damage naming %q, got %v", ro, c.want, err)
				}
			}
			rep, err := CheckFile(context.Background(), path)
			if err != nil || rep.OK() {
				t.Fatalf("check passed a damaged free list: %+v, %v", rep, err)
			}
			os.WriteFile(path, good, 0o644)
			p, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatalf("the repaired file does not open (lock kept?): %v", err)
			}
			p.Close()
		})
	}
}

// A branch page that points back at itself made bbolt's cursor descend
// forever on open, growing its stack until the machine ran out of memory
// (found by FuzzOpenProject). The page walk before bbolt refuses it.
func TestLoopInTheTreeIsRefused(t *testing.T) {
	path := filledProject(t, 300)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	branch := -1
	for off := 2 * 4096; off+4096 <= len(data); off += 4096 {
		if ne.Uint16(data[off+8:]) == branchPageFlag && ne.Uint64(data[off:]) == uint64(off/4096) {
			branch = off
			break
		}
	}
	if branch < 0 {
		t.Fatal("the test project has no branch page")
	}
	ne.PutUint64(data[branch+pageHeaderSize+8:], uint64(branch/4096)) // first child: itself
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{ReadOnly: true})
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "reached twice") {
		t.Fatalf("want the loop named as damage, got %v", err)
	}
	rep, err := CheckFile(context.Background(), path)
	if err != nil || rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "reached twice") {
		t.Fatalf("check: %+v, %v", rep, err)
	}
}
