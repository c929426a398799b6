package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// repairMinFree is the free space the crash repair needs even when
// Options.MinFreeBytes asks for more (the repair of a degraded open runs
// below the reserve): the read-write open flushes the replayed memtables
// into level-0 tables (at most 2 x 8 MiB, through mmap), starts a new WAL
// and value-log file (sparse, one page written) and rewrites the MANIFEST;
// the rest is margin.
const repairMinFree = 32 << 20

// RepairReport says what a read-only Open repaired after a crash.
type RepairReport struct {
	At time.Time
	// Replayed are the write-ahead logs (memtables) whose committed
	// entries were flushed into tables, their torn tail dropped.
	Replayed []string
	// Truncated are the files cut back to their last complete entry.
	Truncated []FileCut
}

// FileCut is one file the repair shortened.
type FileCut struct {
	Name          string
	Before, After int64
}

// String is the report for logs and the CLI.
func (r *RepairReport) String() string {
	var b strings.Builder
	b.WriteString("the database was not closed cleanly (crash or power cut); it was opened read-write once, which replays the write-ahead logs and drops their incomplete tail")
	if len(r.Replayed) > 0 {
		fmt.Fprintf(&b, "; replayed into tables: %s", strings.Join(r.Replayed, ", "))
	}
	for i, c := range r.Truncated {
		if i == 0 {
			b.WriteString("; truncated:")
		}
		fmt.Fprintf(&b, " %s %d -> %d bytes", c.Name, c.Before, c.After)
	}
	b.WriteString("; every committed transaction is kept")
	return b.String()
}

// openReadOnly opens Badger read-only. A database left by a crash has a
// torn write-ahead log tail, which read-only Badger refuses to touch
// (ErrTruncateNeeded): when no other process holds the directory, the
// repair opens it read-write once (Badger then replays the logs up to
// their last complete entry: commits are fsynced, so every committed
// transaction is there, and only a transaction that never committed is
// dropped), closes it and opens it read-only again. degraded says the
// disk is below the reserve: the repair still runs when repairMinFree is
// free.
func (s *Store) openReadOnly(bo badger.Options, degraded bool) (*badger.DB, *RepairReport, error) {
	db, err := openBadger(bo)
	if !errors.Is(err, ErrNeedsRepair) {
		return db, nil, err
	}
	need := s.opts.MinFreeBytes
	if degraded || need > repairMinFree {
		need = repairMinFree
	}
	if s.opts.MinFreeBytes >= 0 {
		if serr := checkSpace(s.opts.Dir, need); serr != nil {
			return nil, nil, fmt.Errorf("%w, which writes: %w", err, serr)
		}
	}
	before := logFiles(s.opts.Dir)
	rw, rerr := openBadger(bo.WithReadOnly(false))
	if rerr != nil {
		if errors.Is(rerr, ErrLocked) {
			return nil, nil, fmt.Errorf("%w: the repair needs the directory to itself and another process has it open (stop it, then retry): %w", err, ErrLocked)
		}
		return nil, nil, fmt.Errorf("%w; the repair failed: %w", err, rerr)
	}
	if cerr := rw.Close(); cerr != nil {
		return nil, nil, fmt.Errorf("%w; the repair failed closing: %w", err, classify(cerr))
	}
	rep := &RepairReport{At: time.Now()}
	after := logFiles(s.opts.Dir)
	for _, name := range sortedKeys(before) {
		a, ok := after[name]
		switch {
		case strings.HasSuffix(name, ".mem") && !ok:
			rep.Replayed = append(rep.Replayed, name)
		case ok && a < before[name]:
			rep.Truncated = append(rep.Truncated, FileCut{Name: name, Before: before[name], After: a})
		}
	}
	db, err = openBadger(bo)
	if err != nil {
		return nil, nil, fmt.Errorf("after the repair: %w", err)
	}
	return db, rep, nil
}

// logFiles returns the sizes of the write-ahead and value logs in dir.
func logFiles(dir string) map[string]int64 {
	out := map[string]int64{}
	for _, pat := range []string{"*.mem", "*.vlog"} {
		names, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, n := range names {
			if st, err := os.Stat(n); err == nil {
				out[filepath.Base(n)] = st.Size()
			}
		}
	}
	return out
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
