// Package storage keeps a whole workstation project — settings, categories,
// image records, masks, feature caches, memory banks, mapper models, training
// logs and evaluation runs — in one BoltDB file, so that a project can be
// copied between stations.
//
// The file is versioned (see SchemaVersion) and migrated forward when an older
// one is opened read-write. Large values are stored as chunked blobs whose
// chunks carry a CRC-32C and whose whole content carries a SHA-256; both are
// verified on read, and a damaged chunk is reported by name without making the
// rest of the project unreadable. Writes that belong together (a model and all
// its parts, a batch of feature caches) are one transaction.
//
// storage depends on no engine package: banks and mappers are stored as the
// bytes their own packages serialise, features as core/mat matrices.
package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this package writes. Files of every earlier
// version are migrated when opened read-write; later versions are refused.
const SchemaVersion = 2

// mmapReserve is the address space mapped at open (see Open).
const mmapReserve = 8 << 30

// ErrNotFound is wrapped by every lookup that finds nothing.
var ErrNotFound = errors.New("not found")

// ErrLocked is wrapped by Open when another process holds the project.
var ErrLocked = errors.New("project locked")

// Options configure Open.
type Options struct {
	// ReadOnly opens the file with a shared lock; writes fail. A read-only
	// open cannot migrate an older schema.
	ReadOnly bool
	// LockTimeout bounds the wait for the file lock (default 1s).
	LockTimeout time.Duration
	// Logger receives migration and diagnostic messages (default slog.Default()).
	Logger *slog.Logger
}

// Project is an open project file. Its methods are safe for concurrent use.
type Project struct {
	db       *bolt.DB
	path     string
	readOnly bool
	log      *slog.Logger
	lockInfo string // path of the side file naming the owner, "" if none written
	chunk    int    // blob chunk size; 0 means ChunkSize (tests use smaller)

	mu       sync.Mutex
	settings Settings // cached copy of the settings bucket
}

// lockOwner is the content of the "<path>.lock-info" side file.
type lockOwner struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

// Bucket names (schema 2).
var (
	bktMeta       = []byte("meta")
	bktSettings   = []byte("settings")
	bktCategories = []byte("categories")
	bktImages     = []byte("images")
	bktImagePaths = []byte("image_paths")
	bktMasks      = []byte("masks")
	bktFeatures   = []byte("features")
	bktBlobs      = []byte("blobs")
	bktModels     = []byte("models")
	bktTrainLogs  = []byte("train_logs")
	bktRuns       = []byte("runs")

	keySchema  = []byte("schema_version")
	keyName    = []byte("name")
	keyCreated = []byte("created")
	keyActive  = []byte("active_model")
	keyJSON    = []byte("json")
)

// allBuckets are the top-level buckets of the current schema.
var allBuckets = [][]byte{bktMeta, bktSettings, bktCategories, bktImages, bktImagePaths,
	bktMasks, bktFeatures, bktBlobs, bktModels, bktTrainLogs, bktRuns}

// Create makes a new project file at path named name, with default settings.
// It fails if the file already exists.
func Create(path, name string) (*Project, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create project %s: %w", path, err)
	}
	f.Close()
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create project %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bktMeta)
		if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		if err := meta.Put(keyName, []byte(name)); err != nil {
			return err
		}
		if err := meta.Put(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
			return err
		}
		js, err := json.Marshal(DefaultSettings())
		if err != nil {
			return err
		}
		if err := tx.Bucket(bktSettings).Put(keyJSON, js); err != nil {
			return err
		}
		return writeManifest(tx, nil)
	})
	db.Close()
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create project %s: %w", path, err)
	}
	return Open(path, Options{})
}

// Open opens an existing project file. If another process holds it, Open
// fails after opts.LockTimeout with an error wrapping ErrLocked that names
// the owner's pid. An older schema is migrated (read-write only); a newer one
// is refused.
func Open(path string, opts Options) (p *Project, err error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	db, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	p = &Project{db: db, path: path, readOnly: opts.ReadOnly, log: opts.Logger}
	unclean := false
	if !opts.ReadOnly {
		// A side file left by a process of this host that no longer runs
		// means it ended without Close (kill -9, power loss).
		unclean = ownerDied(path)
		p.lockInfo = path + ".lock-info"
		if err := writeLockInfo(p.lockInfo); err != nil {
			// Not fatal: the lock itself is held; only the message for others degrades.
			p.log.Warn("write lock info", "path", p.lockInfo, "err", err)
			p.lockInfo = ""
		}
	}
	fail := func(err error) (*Project, error) {
		p.Close()
		return nil, fmt.Errorf("open project %s: %w", path, err)
	}
	if err := p.checkSchema(); err != nil {
		return fail(err)
	}
	if err := p.view(checkStructure); err != nil {
		return fail(fmt.Errorf("%w; %s", err, damagedHint))
	}
	if unclean {
		// bbolt is crash-safe by design; its full page check after an unclean
		// end is insurance against a disk or file system that broke that. It
		// runs after the structure walk has read every page under the guard
		// (the checker's own goroutine cannot recover a memory fault).
		p.log.Info("project was not closed cleanly; checking its pages", "path", path)
		if err := p.Verify(); err != nil {
			return fail(err)
		}
	}
	s, err := p.readSettings()
	if err != nil {
		return fail(err)
	}
	p.settings = s
	return p, nil
}

// openBolt opens the bbolt file at path after checking that it is as long
// as its header says (bbolt maps it and would die of SIGBUS reading past
// its end), with bbolt panics and memory faults turned into errors.
func openBolt(path string, opts Options) (db *bolt.DB, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open project %s: %w", path, err)
	}
	if err := checkFileSize(path); err != nil {
		return nil, fmt.Errorf("open project %s: %w", path, err)
	}
	// PreLoadFreelist: read the free list here, under the guard, rather
	// than lazily inside bbolt's checker goroutine.
	bopts := &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: opts.ReadOnly, PreLoadFreelist: true}
	if runtime.GOOS != "windows" && math.MaxInt > 1<<32 {
		// Reserve address space up front: every time bbolt grows its mapping
		// during a write it copies all dirty values of the transaction to the
		// heap, which made a large blob write cost ~4× its size in RAM. The
		// mapping does not grow the file (it would on Windows).
		bopts.InitialMmapSize = int(max(mmapReserve, 2*st.Size()))
	}
	defer faultsPanic()()
	defer guard(path, "open", &err)
	db, err = bolt.Open(path, 0o644, bopts)
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("project %s is open in another process (%s): %w", path, describeOwner(path), ErrLocked)
		}
		return nil, fmt.Errorf("open project %s: %w", path, err)
	}
	return db, nil
}

// ownerDied reports whether the lock-info side file of path names a
// process of this host that no longer runs.
func ownerDied(path string) bool {
	js, err := os.ReadFile(path + ".lock-info")
	if err != nil {
		return false
	}
	var o lockOwner
	if json.Unmarshal(js, &o) != nil || o.PID == 0 || o.PID == os.Getpid() {
		return false
	}
	host, _ := os.Hostname()
	return o.Host == host && !processAlive(o.PID)
}

func writeLockInfo(path string) error {
	host, _ := os.Hostname()
	js, err := json.Marshal(lockOwner{PID: os.Getpid(), Host: host, Since: time.Now().UTC()})
	if err != nil {
		return err
	}
	return os.WriteFile(path, js, 0o644)
}

// describeOwner reads the lock-info side file of path into "pid N on host H".
// A recorded owner that no longer runs on this host means the holder is a
// reader (readers write no side file) or the file is stale.
func describeOwner(path string) string {
	js, err := os.ReadFile(path + ".lock-info")
	if err != nil {
		return "pid unknown"
	}
	var o lockOwner
	if json.Unmarshal(js, &o) != nil || o.PID == 0 {
		return "pid unknown"
	}
	if host, _ := os.Hostname(); o.Host == host && !processAlive(o.PID) {
		return "pid unknown: a read-only viewer, or a process that did not record itself"
	}
	if o.Host != "" {
		return fmt.Sprintf("pid %d on %s since %s", o.PID, o.Host, o.Since.Local().Format(time.DateTime))
	}
	return fmt.Sprintf("pid %d", o.PID)
}

// processAlive reports whether pid runs on this machine (always true where
// that cannot be asked).
func processAlive(pid int) bool {
	if runtime.GOOS == "windows" {
		return true
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = proc.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EPERM)
}

// Close releases the file and its lock.
func (p *Project) Close() error {
	if p.lockInfo != "" {
		// Remove the side file only if it is still ours.
		if js, err := os.ReadFile(p.lockInfo); err == nil {
			var o lockOwner
			if json.Unmarshal(js, &o) == nil && o.PID == os.Getpid() {
				os.Remove(p.lockInfo)
			}
		}
		p.lockInfo = ""
	}
	if err := p.db.Close(); err != nil {
		return fmt.Errorf("close project %s: %w", p.path, err)
	}
	return nil
}

func (p *Project) chunkSize() int {
	if p.chunk > 0 {
		return p.chunk
	}
	return ChunkSize
}

// Path returns the project file's path.
func (p *Project) Path() string { return p.path }

// Name returns the project's name, as given to Create.
func (p *Project) Name() (string, error) {
	var name string
	err := p.view(func(tx *bolt.Tx) error {
		name = string(tx.Bucket(bktMeta).Get(keyName))
		return nil
	})
	return name, err
}

// SchemaVersionOf reads the schema version stored in an open transaction's
// meta bucket; 0 when the file is not a workstation project.
func schemaVersionOf(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bktMeta)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(keySchema)
	if v == nil {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(v)))
	if err != nil {
		return 0, fmt.Errorf("meta/schema_version %q: %w", v, err)
	}
	return n, nil
}

// checkSchema refuses foreign or newer files and migrates older ones.
func (p *Project) checkSchema() error {
	var v int
	if err := p.view(func(tx *bolt.Tx) (err error) { v, err = schemaVersionOf(tx); return err }); err != nil {
		return err
	}
	switch {
	case v == 0:
		return errors.New("not a workstation project (no meta/schema_version)")
	case v > SchemaVersion:
		return fmt.Errorf("project was written by a newer workstation (schema %d > %d); upgrade", v, SchemaVersion)
	case v == SchemaVersion:
		return nil
	case p.readOnly:
		return fmt.Errorf("project has schema %d and needs migration to %d; open it read-write once", v, SchemaVersion)
	}
	return p.migrate(v)
}

// Verify checks bbolt's own page consistency (not content checksums; see
// VerifyModel and VerifyBlob for those, and Check for everything).
func (p *Project) Verify() error {
	// bbolt's checker runs in a goroutine of its own, where a memory fault
	// (a page past the end of a damaged file) cannot be recovered: read
	// everything it will read here first, under the guard.
	if err := p.view(readAll); err != nil {
		return err
	}
	return p.checkPages()
}

// checkPages runs bbolt's page check on a file readAll has read through.
func (p *Project) checkPages() error {
	return p.view(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain the channel so the checker ends
			if first == nil {
				first = fmt.Errorf("project %s: %w: %w", p.path, err, ErrDamaged)
			}
		}
		return first
	})
}
