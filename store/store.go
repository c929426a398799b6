package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// SchemaVersion is the key schema this build writes (see keys.go). Open
// migrates older databases to it and refuses newer ones.
const SchemaVersion = 2

// migration upgrades a database from schema version to-1 to version to. It
// runs in one transaction together with the new version number, so a crash
// leaves either the old or the new schema.
type migration struct {
	to   uint32
	name string
	run  func(txn *badger.Txn) error
}

// migrations, in order. Version 1 is the first schema.
var migrations = []migration{
	// Version 2 records the backbone of every vector and head, and keeps
	// face crops, staged re-embeddings and the re-embedding state (keys.go).
	// Nothing is rewritten: version 1 only held dlib vectors, which is what
	// an absent backbone id reads as (LegacyBackbone). The version number
	// is what matters: an older edged refuses the database
	// (ErrSchemaTooNew) instead of loading vectors of another backbone as
	// dlib ones.
	{to: 2, name: "backbone ids and face crops", run: func(*badger.Txn) error { return nil }},
}

// targetSchema is the version Open migrates to: SchemaVersion (a variable
// so tests can add migrations).
var targetSchema uint32 = SchemaVersion

// Store is edged's database: people, samples, clusters, negatives, head
// versions, unknown-face clusters, the command de-duplication table and
// the event outbox, in Badger. All methods are safe for concurrent use.
type Store struct {
	opts Options
	log  *slog.Logger

	// closeMu guards db against use after Close and against the switch
	// from a degraded read-only database to a read-write one: every
	// operation holds it for reading; Close and the switch for writing.
	closeMu sync.RWMutex
	db      *badger.DB
	closed  bool
	// degraded is set while db was opened read-only (or in memory, for a
	// database still to be created) because the file system was below
	// Options.MinFreeBytes at Open: see degraded.go.
	degraded degradedOpen
	done     chan struct{} // closed by Close; stops RunGC

	space spaceState // the free-space verdicts, for Status and the metrics

	// outMu serialises commits that append outbox events so that sequence
	// numbers are assigned in commit order, and every change of the outbox
	// accounting (appends, acks, drops).
	outMu    sync.Mutex
	outSeq   uint64 // last assigned outbox sequence number
	out      outboxState
	outReady chan struct{}

	repair *RepairReport // what Open repaired, nil when nothing
}

// Open opens (or, for a directory that does not exist or is empty,
// creates) the database in opts.Dir, then brings its schema up to date.
// A locked directory gives ErrLocked, a wrong key ErrWrongKey, anything
// unreadable ErrCorrupt: the store never recreates a database it cannot
// read.
//
// A read-write Open on a file system below Options.MinFreeBytes does not
// fail: the store opens degraded (Status reports StatusStorageFull),
// reads work, every write gives ErrDiskFull, and the store switches to
// read-write by itself once space is back (degraded.go).
//
// A database left by a crash (kill -9, power cut) has a torn tail in its
// write-ahead log, which Badger only truncates in a read-write open; a
// read-only Open repairs it when no other process holds the directory
// (repair.go) and reports what it did in Repaired.
func Open(opts Options) (*Store, error) {
	opts.fill()
	if opts.Dir == "" {
		return nil, errors.New("open store: no directory given")
	}
	if len(opts.EncryptionKey) > 0 && !validKeyLen(len(opts.EncryptionKey)) {
		return nil, fmt.Errorf("open store %q: %w: got %d bytes", opts.Dir, ErrBadKey, len(opts.EncryptionKey))
	}
	fresh, err := checkDir(opts.Dir, opts.ReadOnly)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", opts.Dir, err)
	}
	s := &Store{opts: opts, log: opts.Logger, done: make(chan struct{}), outReady: make(chan struct{}, 1)}
	s.out.init()
	mode := modeReadWrite
	if opts.ReadOnly {
		mode = modeReadOnly
	} else if err := checkSpace(opts.Dir, opts.MinFreeBytes); err != nil {
		// Badger writes at a read-write Open (a new memtable WAL and
		// value-log file, the pid file, replayed memtables flushed to
		// level 0, compactions): on a file system below the reserve a
		// write through mmap can kill the process with SIGBUS. A
		// read-only Badger writes nothing, so the store opens that way,
		// degraded, and switches to read-write once space is back
		// (degraded.go). A database still to be created has nothing to
		// read: it lives in memory, empty, until then.
		s.space.refuse(err)
		mode = modeDegraded
		if fresh {
			mode = modeDegradedFresh
		}
		s.log.Warn("store opened degraded: the disk is below its free-space reserve; reads work, writes are refused until space is freed",
			"dir", opts.Dir, "err", err)
	}
	if mode == modeReadWrite && fresh {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("open store %q: %w", opts.Dir, err)
		}
	}
	db, rep, err := s.openDB(mode)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", opts.Dir, err)
	}
	s.db, s.repair = db, rep
	s.degraded.set(mode)
	if err := s.afterOpen(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %q: %w", opts.Dir, err)
	}
	if rep != nil {
		s.log.Warn("store repaired: "+rep.String(), "dir", opts.Dir)
	}
	return s, nil
}

// openMode says how openDB opens Badger.
type openMode int

const (
	modeReadWrite     openMode = iota
	modeReadOnly               // Options.ReadOnly
	modeDegraded               // read-only because the disk is below the reserve
	modeDegradedFresh          // no database yet and no space to create one: in memory
)

// openDB opens Badger in the mode, with the crash repair of read-only
// opens (repair.go).
func (s *Store) openDB(mode openMode) (*badger.DB, *RepairReport, error) {
	bo := badgerOptions(s.opts.Dir, s.opts)
	if mode != modeDegradedFresh {
		if err := checkTables(s.opts.Dir, len(s.opts.EncryptionKey) > 0, bo); err != nil {
			return nil, nil, err
		}
	}
	switch mode {
	case modeReadWrite:
		db, err := openBadger(bo.WithReadOnly(false))
		return db, nil, err
	case modeDegradedFresh:
		db, err := openBadger(bo.WithReadOnly(false).WithInMemory(true).WithDir("").WithValueDir(""))
		return db, nil, err
	}
	return s.openReadOnly(bo.WithReadOnly(true), mode == modeDegraded)
}

// afterOpen checks the schema and loads the outbox state of a freshly
// opened db (closeMu held or not yet shared).
func (s *Store) afterOpen() error {
	if err := s.checkSchema(); err != nil {
		return err
	}
	return s.loadOutbox()
}

// badgerOptions are the Badger options for a database in dir. The sizes
// are small for edge devices, and DefaultMinFreeBytes is derived from them.
func badgerOptions(dir string, opts Options) badger.Options {
	bo := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{opts.Logger}).
		WithSyncWrites(!opts.NoSync).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithNumCompactors(2).
		WithValueLogFileSize(valueLogFileSize).
		WithBlockCacheSize(opts.CacheSize).
		WithMetricsEnabled(false).
		WithNumGoroutines(2)
	if len(opts.EncryptionKey) > 0 {
		bo = bo.WithEncryptionKey(opts.EncryptionKey).WithIndexCacheSize(opts.CacheSize)
	}
	return bo
}

// Badger sizes (see DefaultMinFreeBytes, which depends on them).
const (
	memTableSize     = 8 << 20
	numMemtables     = 2
	valueLogFileSize = 64 << 20
)

// checkDir refuses a path that is not a directory, and a non-empty
// directory without a Badger MANIFEST (somebody else's files, or a database
// whose manifest was lost: Badger would start an empty one next to them).
// It reports whether the database is still to be created.
func checkDir(dir string, readOnly bool) (fresh bool, err error) {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		if readOnly {
			return false, fmt.Errorf("no database here: %w", os.ErrNotExist)
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if !st.IsDir() {
		return false, fmt.Errorf("%w: not a directory", ErrCorrupt)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	if len(entries) == 0 {
		if readOnly {
			return false, fmt.Errorf("no database here: %w", os.ErrNotExist)
		}
		return true, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		names := make([]string, 0, 3)
		for i, e := range entries {
			if i == 3 {
				names = append(names, "...")
				break
			}
			names = append(names, e.Name())
		}
		return false, fmt.Errorf("%w: the directory is not empty but has no MANIFEST (holds %s); refusing to create a database over it",
			ErrCorrupt, strings.Join(names, ", "))
	}
	return false, nil
}

// openBadger opens the database, turning Badger's failures (and panics:
// some corruptions panic inside Badger) into the store's errors.
func openBadger(bo badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	db, err = badger.Open(bo)
	if err == nil {
		return db, nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Cannot acquire directory lock"):
		return nil, fmt.Errorf("%w (is `edged run` running? stop it, or use its MQTT commands)", ErrLocked)
	case len(bo.EncryptionKey) == 0 && (errors.Is(err, badger.ErrEncryptionKeyMismatch) || strings.Contains(strings.ToLower(msg), "encrypt")):
		return nil, fmt.Errorf("%w: the database is encrypted and no key was given (store.key_file or $%s)", ErrWrongKey, KeyEnv)
	case errors.Is(err, badger.ErrEncryptionKeyMismatch):
		return nil, fmt.Errorf("%w (or the database is not encrypted)", ErrWrongKey)
	case errors.Is(err, os.ErrPermission):
		return nil, err
	case errors.Is(err, badger.ErrTruncateNeeded) || strings.Contains(msg, badger.ErrTruncateNeeded.Error()):
		// Badger wraps it without %w.
		return nil, fmt.Errorf("%w (%v)", ErrNeedsRepair, err)
	}
	return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
}

func (s *Store) checkSchema() error {
	var version uint32
	var found, empty bool
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keySchema))
		if errors.Is(err, badger.ErrKeyNotFound) {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			it.Rewind()
			empty = !it.Valid()
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error {
			if len(v) != 4 {
				return fmt.Errorf("%w: bad schema version record", ErrCorrupt)
			}
			version = binary.BigEndian.Uint32(v)
			return nil
		})
	})
	if err != nil {
		return classify(err)
	}
	switch {
	case !found && !empty:
		return fmt.Errorf("%w: a Badger database without an edged schema version", ErrCorrupt)
	case !found && s.readOnlyDB():
		return nil // an empty database: nothing to read, nothing to write
	case !found:
		return s.db.Update(func(txn *badger.Txn) error {
			if err := txn.Set([]byte(keySchema), be32(targetSchema)); err != nil {
				return err
			}
			return txn.Set([]byte(keyCreated), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
		})
	case version > targetSchema:
		return fmt.Errorf("%w: version %d, this build knows %d", ErrSchemaTooNew, version, targetSchema)
	case version < targetSchema && s.readOnlyDB():
		return fmt.Errorf("schema version %d needs a migration to %d: open it read-write once: %w", version, targetSchema, ErrReadOnly)
	}
	return s.migrate(version)
}

func (s *Store) migrate(from uint32) error {
	for _, m := range migrations {
		if m.to <= from || m.to > targetSchema {
			continue
		}
		s.log.Info("migrating store schema", "from", m.to-1, "to", m.to, "migration", m.name)
		err := s.db.Update(func(txn *badger.Txn) error {
			if err := m.run(txn); err != nil {
				return err
			}
			return txn.Set([]byte(keySchema), be32(m.to))
		})
		if err != nil {
			return fmt.Errorf("migrate schema to version %d (%s): %w", m.to, m.name, err)
		}
		from = m.to
	}
	return nil
}

// Version returns the database's schema version.
func (s *Store) Version() (uint32, error) {
	var v uint32
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keySchema))
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			if len(b) == 4 {
				v = binary.BigEndian.Uint32(b)
			}
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	return v, err
}

// Dir returns the database directory.
func (s *Store) Dir() string { return s.opts.Dir }

// Encrypted reports whether the database is encrypted at rest.
func (s *Store) Encrypted() bool { return len(s.opts.EncryptionKey) > 0 }

// ReadOnly reports whether the store was opened read-only (writes give
// ErrReadOnly). A store opened read-write but degraded (Status) is not
// read-only: its writes give ErrDiskFull until space is back.
func (s *Store) ReadOnly() bool { return s.opts.ReadOnly }

// Repaired returns what Open repaired after a crash, or nil.
func (s *Store) Repaired() *RepairReport { return s.repair }

// readOnlyDB reports whether db is a read-only Badger (requested, or
// degraded); callers hold closeMu or have not shared the store yet.
func (s *Store) readOnlyDB() bool { return s.opts.ReadOnly || s.degraded.mode != modeReadWrite }

// Close stops RunGC, waits for running operations and closes the database.
// Later calls return ErrClosed.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	close(s.done)
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// view runs fn in a read-only Badger transaction, unless the store is closed.
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

// classify maps Badger errors that reach callers to the store's.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrDBClosed):
		return ErrClosed
	case errors.Is(err, syscall.ENOSPC) && !errors.Is(err, ErrDiskFull):
		// A write Badger makes with write(2) (MANIFEST, a new file)
		// hit the full disk before the free-space check did.
		return fmt.Errorf("%w: %v", ErrDiskFull, err)
	}
	return err
}

func be64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func be32(v uint32) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	return b
}

// badgerLogger routes Badger's messages to slog; Badger's info chatter goes
// to debug level.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
