package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is wrapped by every error that reports a damaged project file:
// a bad page, a file shorter than its own header says, a missing bucket, a
// manifest that does not match the content. `workstation check` lists all
// damage; `workstation salvage` copies what is readable into a new project.
var ErrDamaged = errors.New("project file damaged")

// damagedHint is appended to damage errors so the user knows what to do.
const damagedHint = "run `workstation check` for details, `workstation salvage` to recover what is readable"

// guard is deferred once by every entry point that touches the bbolt file:
// a panic inside bbolt (it trusts page contents: "slice bounds out of
// range", "Page expected", "zero-length inode key") becomes an error naming
// the file. Memory faults on the mapping (SIGBUS on a file cut short under
// us) arrive as such panics too, because the caller set
// debug.SetPanicOnFault (see faultsPanic).
func guard(path, op string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: project %s: bbolt failed on damaged data (%v): %w; %s", op, path, r, ErrDamaged, damagedHint)
	}
}

// faultsPanic makes memory faults in this goroutine panic (recoverable)
// instead of killing the process; the returned function restores the old
// setting. bbolt reads the file through mmap, where a truncated or damaged
// file faults instead of returning an error.
func faultsPanic() func() {
	old := debug.SetPanicOnFault(true)
	return func() { debug.SetPanicOnFault(old) }
}

// view runs fn in a read transaction, turning bbolt panics and faults into
// an error that names the file.
func (p *Project) view(fn func(*bolt.Tx) error) (err error) {
	defer faultsPanic()()
	defer guard(p.path, "read", &err)
	return p.db.View(fn)
}

// update runs fn in a write transaction, then records the manifest of key
// counts in the same transaction (see manifest), turning bbolt panics and
// faults into an error that names the file. bbolt rolls the transaction
// back before the panic reaches guard.
//
// touched names the top-level buckets fn may change: only those are
// recounted, so a small write costs a walk of its own buckets, not of the
// whole file. No names (or a file without a readable manifest) recounts
// every bucket. A bucket fn changes but touched omits leaves a stale count
// that the next open reports as damage: TestManifestStaysExact runs every
// write API and compares the manifest with a full recount.
func (p *Project) update(fn func(*bolt.Tx) error, touched ...[]byte) (err error) {
	defer faultsPanic()()
	defer guard(p.path, "write", &err)
	var fnErr error
	err = p.db.Update(func(tx *bolt.Tx) error {
		if fnErr = fn(tx); fnErr != nil {
			return fnErr
		}
		return writeManifest(tx, touched)
	})
	if err != nil && err != fnErr {
		// A failed commit (disk full, I/O error) names the file; the
		// previous state is kept.
		return fmt.Errorf("project %s: %w", p.path, err)
	}
	return err
}

// Bolt meta page layout (bbolt v1, go.etcd.io/bbolt/internal/common): a
// 16-byte page header, then magic, version, pageSize, flags (uint32 each),
// the root bucket (root pgid, sequence: uint64 each), freelist pgid, the
// high-water pgid, txid, and an FNV-64a checksum of everything from magic to
// txid. Native byte order.
const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	metaOff         = 16
	metaChecksummed = 56 // bytes from magic to txid
)

type boltMeta struct {
	pageSize uint32
	root     uint64 // the root bucket's page
	freelist uint64
	pgid     uint64
	txid     uint64
}

// Freelist page layout: the 16-byte page header (id uint64, flags uint16,
// count uint16, overflow uint32), then count page ids (uint64); a count of
// 0xFFFF means the real count is the first uint64.
const (
	freelistPageFlag = 0x10
	noFreelist       = ^uint64(0) // bbolt's marker for a free list it does not store
)

// readBoltMeta decodes and verifies one meta page at off; ok false when it
// is not a valid meta page.
func readBoltMeta(f io.ReaderAt, off int64) (m boltMeta, ok bool) {
	buf := make([]byte, metaOff+metaChecksummed+8)
	if _, err := f.ReadAt(buf, off); err != nil {
		return m, false
	}
	b := buf[metaOff:]
	ne := binary.NativeEndian
	if ne.Uint32(b[0:]) != boltMagic || ne.Uint32(b[4:]) != boltVersion {
		return m, false
	}
	h := fnv.New64a()
	h.Write(b[:metaChecksummed])
	if h.Sum64() != ne.Uint64(b[metaChecksummed:]) {
		return m, false
	}
	return boltMeta{pageSize: ne.Uint32(b[8:]), root: ne.Uint64(b[16:]), freelist: ne.Uint64(b[32:]), pgid: ne.Uint64(b[40:]), txid: ne.Uint64(b[48:])}, true
}

// checkFileSize refuses a bbolt file shorter than the pages its newest valid
// meta page accounts for, and one whose free list is damaged. bbolt maps the
// file and would otherwise die with SIGBUS on the first read past its end (a
// file cut short by a copy, a full disk or a broken transfer). It reads the
// free list while opening, after it has locked and mapped the file: a panic
// there loses the *bolt.DB, and the mapping keeps the file's lock held
// until the process exits; a free list naming live pages would make later
// writes overwrite them.
func checkFileSize(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil // bbolt initialises an empty file (Create)
	}
	m0, ok0 := readBoltMeta(f, 0)
	var m1 boltMeta
	ok1 := false
	for _, ps := range []int64{int64(m0.pageSize), 4096, 16384, 65536} {
		if ps > 0 {
			if m1, ok1 = readBoltMeta(f, ps); ok1 {
				break
			}
		}
	}
	var m boltMeta
	switch {
	case ok0 && ok1:
		m = m0
		if m1.txid > m0.txid {
			m = m1
		}
	case ok0:
		m = m0
	case ok1:
		m = m1
	default:
		return fmt.Errorf("not a bbolt file, or both its meta pages are damaged: %w; %s", ErrDamaged, damagedHint)
	}
	if m.pageSize < 512 || m.pageSize > 1<<20 {
		return fmt.Errorf("implausible page size %d: %w; %s", m.pageSize, ErrDamaged, damagedHint)
	}
	if need := int64(m.pgid) * int64(m.pageSize); m.pgid > 1<<40 || need > st.Size() {
		return fmt.Errorf("file is %d bytes but its header accounts for %d pages of %d bytes (%d bytes): truncated: %w; %s",
			st.Size(), m.pgid, m.pageSize, need, ErrDamaged, damagedHint)
	}
	if err := checkFreelist(f, m); err != nil {
		return fmt.Errorf("free list: %w: %w; %s", err, ErrDamaged, damagedHint)
	}
	if err := checkTree(f, m); err != nil {
		return fmt.Errorf("b-tree: %w: %w; %s", err, ErrDamaged, damagedHint)
	}
	return nil
}

// Page and element layout of bbolt v1 (go.etcd.io/bbolt/internal/common).
const (
	pageHeaderSize = 16
	branchPageFlag = 0x01
	leafPageFlag   = 0x02
	elemSize       = 16 // branch: pos, ksize uint32, pgid uint64; leaf: flags, pos, ksize, vsize uint32
	bucketLeafFlag = 0x01
	bucketHeader   = 16 // root pgid, sequence uint64
	maxTreeDepth   = 256
)

// checkTree walks the page structure of every bucket from the meta page's
// root, reading only page headers, element arrays and bucket headers (no
// plain values), and refuses pages outside the file, pages of the wrong
// type, elements outside their page, and any page reached twice. bbolt's
// cursor trusts all of this: a branch page that points back at an ancestor
// made the open's key walk descend forever, growing its stack until the
// machine ran out of memory.
func checkTree(f io.ReaderAt, m boltMeta) error {
	seen := make([]bool, m.pgid)
	seen[0], seen[1] = true, true
	w := treeWalk{f: f, ps: int64(m.pageSize), pgid: m.pgid, seen: seen}
	return w.page(m.root, 0)
}

type treeWalk struct {
	f    io.ReaderAt
	ps   int64
	pgid uint64
	seen []bool
}

// page checks the page id and, below it, its subtree.
func (w *treeWalk) page(id uint64, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("page %d: deeper than %d levels", id, maxTreeDepth)
	}
	if id < 2 || id >= w.pgid {
		return fmt.Errorf("page %d outside the file's %d pages", id, w.pgid)
	}
	buf := make([]byte, w.ps)
	if _, err := w.f.ReadAt(buf, int64(id)*w.ps); err != nil {
		return fmt.Errorf("page %d: %w", id, err)
	}
	ne := binary.NativeEndian
	flags, count, overflow := ne.Uint16(buf[8:]), int64(ne.Uint16(buf[10:])), uint64(ne.Uint32(buf[12:]))
	if id+overflow >= w.pgid {
		return fmt.Errorf("page %d runs %d pages past the file's %d", id, overflow, w.pgid)
	}
	for p := id; p <= id+overflow; p++ {
		if w.seen[p] {
			return fmt.Errorf("page %d reached twice (a loop or shared page in the tree)", p)
		}
		w.seen[p] = true
	}
	size := (int64(overflow) + 1) * w.ps
	if need := pageHeaderSize + count*elemSize; need > int64(len(buf)) {
		if need > size {
			return fmt.Errorf("page %d: %d elements do not fit in %d bytes", id, count, size)
		}
		buf = make([]byte, need)
		if _, err := w.f.ReadAt(buf, int64(id)*w.ps); err != nil {
			return fmt.Errorf("page %d: %w", id, err)
		}
	}
	switch flags {
	case branchPageFlag:
		for i := range count {
			e := buf[pageHeaderSize+i*elemSize:]
			if err := w.elementFits(id, i, size, ne.Uint32(e[0:]), ne.Uint32(e[4:]), 0); err != nil {
				return err
			}
			if err := w.page(ne.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
		}
		return nil
	case leafPageFlag:
		return w.leaf(id, buf[:pageHeaderSize+count*elemSize], int64(id)*w.ps, size, count, depth)
	default:
		return fmt.Errorf("page %d has type %#x where a branch or leaf page belongs", id, flags)
	}
}

// leaf checks the elements of a leaf page at file offset off (an inline
// bucket's page lies inside its parent's value) and descends into the
// buckets it holds.
func (w *treeWalk) leaf(id uint64, buf []byte, off, size, count int64, depth int) error {
	ne := binary.NativeEndian
	for i := range count {
		e := buf[pageHeaderSize+i*elemSize:]
		flags, pos, ksize, vsize := ne.Uint32(e[0:]), ne.Uint32(e[4:]), ne.Uint32(e[8:]), ne.Uint32(e[12:])
		if err := w.elementFits(id, i, size, pos, ksize, vsize); err != nil {
			return err
		}
		if flags&bucketLeafFlag == 0 {
			continue
		}
		if vsize < bucketHeader {
			return fmt.Errorf("page %d element %d: bucket value of %d bytes", id, i, vsize)
		}
		// The value starts pos+ksize bytes after the element itself.
		valAt := off + pageHeaderSize + i*elemSize + int64(pos) + int64(ksize)
		val := make([]byte, vsize)
		if _, err := w.f.ReadAt(val, valAt); err != nil {
			return fmt.Errorf("page %d element %d: %w", id, i, err)
		}
		if root := ne.Uint64(val); root != 0 {
			if err := w.page(root, depth+1); err != nil {
				return err
			}
			continue
		}
		// Inline bucket: a leaf page inside the value.
		in := val[bucketHeader:]
		if len(in) < pageHeaderSize || ne.Uint16(in[8:]) != leafPageFlag {
			return fmt.Errorf("page %d element %d: inline bucket without a leaf page", id, i)
		}
		n := int64(ne.Uint16(in[10:]))
		if pageHeaderSize+n*elemSize > int64(len(in)) {
			return fmt.Errorf("page %d element %d: inline bucket's %d elements do not fit", id, i, n)
		}
		if depth+1 > maxTreeDepth {
			return fmt.Errorf("page %d: deeper than %d levels", id, maxTreeDepth)
		}
		if err := w.leaf(id, in, valAt+bucketHeader, int64(len(in)), n, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// elementFits checks that element i's key and value (pos counts from the
// element) lie inside the page's size bytes.
func (w *treeWalk) elementFits(id uint64, i, size int64, pos, ksize, vsize uint32) error {
	if end := pageHeaderSize + i*elemSize + int64(pos) + int64(ksize) + int64(vsize); end > size {
		return fmt.Errorf("page %d element %d ends at byte %d of a %d-byte page", id, i, end, size)
	}
	return nil
}

// checkFreelist verifies the free list page that meta m names: its type,
// its extent and every page id in it (each must lie between the meta pages
// and the high-water mark).
func checkFreelist(f io.ReaderAt, m boltMeta) error {
	if m.freelist == noFreelist {
		return errors.New("not stored (this workstation always stores it)")
	}
	if m.freelist < 2 || m.freelist >= m.pgid {
		return fmt.Errorf("page %d outside the file's %d pages", m.freelist, m.pgid)
	}
	ps := int64(m.pageSize)
	hdr := make([]byte, 24)
	if _, err := f.ReadAt(hdr, int64(m.freelist)*ps); err != nil {
		return fmt.Errorf("page %d: %w", m.freelist, err)
	}
	ne := binary.NativeEndian
	flags, count, overflow := ne.Uint16(hdr[8:]), uint64(ne.Uint16(hdr[10:])), uint64(ne.Uint32(hdr[12:]))
	if flags != freelistPageFlag {
		return fmt.Errorf("page %d has type %#x, not a free list", m.freelist, flags)
	}
	if m.freelist+overflow >= m.pgid {
		return fmt.Errorf("page %d runs %d pages past the file's %d", m.freelist, overflow, m.pgid)
	}
	start := int64(16)
	if count == 0xFFFF {
		count, start = ne.Uint64(hdr[16:]), 24
	}
	if int64(count) > ((int64(overflow)+1)*ps-start)/8 {
		return fmt.Errorf("page %d claims %d free pages, more than it can hold", m.freelist, count)
	}
	ids := make([]byte, count*8)
	if _, err := f.ReadAt(ids, int64(m.freelist)*ps+start); err != nil {
		return fmt.Errorf("page %d: %w", m.freelist, err)
	}
	for i := range int(count) {
		if id := ne.Uint64(ids[8*i:]); id < 2 || id >= m.pgid {
			return fmt.Errorf("page %d lists free page %d, outside the file's %d pages", m.freelist, id, m.pgid)
		}
	}
	return nil
}

// keyManifest is the number of keys (recursively, nested buckets' keys
// included) in each top-level bucket but meta, written by every write
// transaction under meta/manifest and compared on open: a key that
// vanished from a damaged b-tree page shows as a count that no longer
// matches, a broken key order as an order error.
var keyManifest = []byte("manifest")

// errKeyOrder is wrapped by the walk's error for a key out of order.
var errKeyOrder = errors.New("keys out of order")

type manifest struct {
	Counts map[string]int `json:"counts"`
}

// countKeys walks the named top-level buckets (all but meta when names is
// empty), counting keys and checking that keys ascend strictly on every
// level (bbolt finds keys by binary search: a key out of order is a key
// that lookups cannot see).
func countKeys(tx *bolt.Tx, names ...[]byte) (map[string]int, error) {
	if len(names) == 0 {
		names = allBuckets
	}
	counts := map[string]int{}
	var walk func(b *bolt.Bucket, where string) (int, error)
	walk = func(b *bolt.Bucket, where string) (int, error) {
		n := 0
		var prev []byte
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if prev != nil && bytes.Compare(prev, k) >= 0 {
				return n, fmt.Errorf("bucket %s: key %x after %x: %w: %w", where, k, prev, errKeyOrder, ErrDamaged)
			}
			prev = append(prev[:0], k...)
			n++
			if v == nil {
				child := b.Bucket(k)
				if child == nil {
					return n, fmt.Errorf("bucket %s: key %x has no value and is no bucket: %w", where, k, ErrDamaged)
				}
				m, err := walk(child, where+"/"+printable(k))
				n += m
				if err != nil {
					return n, err
				}
			}
		}
		return n, nil
	}
	for _, name := range names {
		if bytes.Equal(name, bktMeta) {
			continue
		}
		b := tx.Bucket(name)
		if b == nil {
			continue
		}
		n, err := walk(b, string(name))
		if err != nil {
			return nil, err
		}
		counts[string(name)] = n
	}
	return counts, nil
}

// readAll reads every bucket and key of the file, nested buckets included
// (the pages bbolt's checker visits), in the calling goroutine, so that a
// page bbolt cannot map faults here (recovered by the caller's guard into
// ErrDamaged) rather than in bbolt's checker goroutine, where it would kill
// the process. Plain values are not read: the checker does not read them
// either, and reading them would read the whole file on an unclean open.
func readAll(tx *bolt.Tx) error {
	var walk func(b *bolt.Bucket, where string) error
	walk = func(b *bolt.Bucket, where string) error {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v != nil {
				continue
			}
			child := b.Bucket(k)
			if child == nil {
				return fmt.Errorf("bucket %s: key %x has no value and is no bucket: %w", where, k, ErrDamaged)
			}
			if err := walk(child, where+"/"+printable(k)); err != nil {
				return err
			}
		}
		return nil
	}
	return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(b, printable(name)) })
}

// printable renders a key for a message: as text when it is text.
func printable(k []byte) string {
	for _, c := range k {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%x", k)
		}
	}
	return string(k)
}

// writeManifest records the key counts under meta/manifest, recounting
// only the touched buckets when the stored manifest can be updated.
func writeManifest(tx *bolt.Tx, touched [][]byte) error {
	meta := tx.Bucket(bktMeta)
	if meta == nil {
		return nil // not a project (yet); checkSchema reports it
	}
	var old manifest
	if len(touched) > 0 {
		if js := meta.Get(keyManifest); js == nil || json.Unmarshal(js, &old) != nil || old.Counts == nil {
			touched = nil // nothing to update: count everything
		}
	}
	counts, err := countKeys(tx, touched...)
	if err != nil {
		return err
	}
	if len(touched) > 0 {
		for _, name := range touched {
			delete(old.Counts, string(name)) // a bucket fn removed has no count
		}
		maps.Copy(old.Counts, counts)
		counts = old.Counts
	}
	js, err := json.Marshal(manifest{Counts: counts})
	if err != nil {
		return err
	}
	return meta.Put(keyManifest, js)
}

// checkStructure verifies, on open, that every bucket of the schema exists
// and that the key counts match the manifest (when the file has one: files
// written before it get one on their first write). Cost: one walk over all
// keys, no values read.
func checkStructure(tx *bolt.Tx) error {
	var missing []string
	for _, b := range allBuckets {
		if tx.Bucket(b) == nil {
			missing = append(missing, string(b))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("bucket(s) %s missing: %w", strings.Join(missing, ", "), ErrDamaged)
	}
	counts, err := countKeys(tx)
	if err != nil {
		return err
	}
	js := tx.Bucket(bktMeta).Get(keyManifest)
	if js == nil {
		return nil
	}
	var m manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return fmt.Errorf("meta/manifest unreadable (%v): %w", err, ErrDamaged)
	}
	for _, name := range slices.Sorted(maps.Keys(m.Counts)) {
		if counts[name] != m.Counts[name] {
			return fmt.Errorf("bucket %s holds %d keys, the manifest written with it says %d: %w", name, counts[name], m.Counts[name], ErrDamaged)
		}
	}
	return nil
}
