package store

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Status values (StoreStatus.Status): what /healthz and the MQTT status
// report as "degraded: <status>".
const (
	// StatusOK: reads and writes work.
	StatusOK = "ok"
	// StatusStorageFull: the file system holding the store has less than
	// Options.MinFreeBytes free. Reads work; every write gives ErrDiskFull
	// and changes nothing. Writing resumes by itself once space is back.
	StatusStorageFull = "storage_full"
)

// StoreStatus is the store's health, for /healthz, the MQTT status and
// the metrics.
type StoreStatus struct {
	// Status is StatusOK or StatusStorageFull.
	Status string
	// Since is when the current storage_full episode began (zero when OK).
	Since time.Time
	// Err is the ErrDiskFull error with the figures (nil when OK).
	Err error
	// ReadOnlyFallback: the store was opened below the reserve, so Badger
	// runs read-only (or, for a database still to be created, in memory)
	// until space is back and Status switches it to read-write.
	ReadOnlyFallback bool
	// Episodes counts the times the store went from OK to storage_full
	// since Open (an Open below the reserve counts as one).
	Episodes uint64
	// RefusedWrites counts the writes refused with ErrDiskFull since Open.
	RefusedWrites uint64
}

// Degraded reports whether the store refuses writes for lack of space.
func (st StoreStatus) Degraded() bool { return st.Status != StatusOK }

// statusRecheck is how often Status measures the free space again (each
// write measures it anyway): the watchdog and /healthz may call it often.
const statusRecheck = time.Second

// Status returns the store's health. It measures the free space (at most
// once a second) and, when a store opened below the reserve finds the
// space back, switches it to read-write: the daemon's health checks are
// what makes writing resume by itself while nothing writes.
func (s *Store) Status() StoreStatus {
	if s.opts.MinFreeBytes > 0 && !s.opts.ReadOnly && s.space.due(time.Now()) {
		s.closeMu.RLock()
		closed := s.closed
		s.closeMu.RUnlock()
		if !closed {
			_ = s.checkWriteSpace() // records the verdict, and may upgrade
		}
	}
	return s.space.status(s.fallback())
}

func (s *Store) fallback() bool {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	return s.degraded.mode == modeDegraded || s.degraded.mode == modeDegradedFresh
}

// upgradeRetry is how long a failed switch to read-write waits before the
// next try (a variable for tests).
var upgradeRetry = 10 * time.Second

// degradedOpen is how Badger was opened (guarded by closeMu).
type degradedOpen struct {
	mode openMode
	// lastTry is when the switch to read-write last failed (another
	// process held the directory): retried at most every upgradeRetry.
	lastTry time.Time
}

func (d *degradedOpen) set(m openMode) { d.mode = m }

// spaceState remembers the free-space verdicts of the writes and of
// Status.
type spaceState struct {
	mu       sync.Mutex
	full     bool
	since    time.Time
	err      error
	checked  time.Time
	episodes uint64
	refused  atomic.Uint64
}

// due reports whether Status should measure again.
func (sp *spaceState) due(now time.Time) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if now.Sub(sp.checked) < statusRecheck {
		return false
	}
	sp.checked = now
	return true
}

// refuse records a check that found the disk below the reserve; it
// reports whether this began an episode.
func (sp *spaceState) refuse(err error) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.err = err
	sp.checked = time.Now()
	if sp.full {
		return false
	}
	sp.full, sp.since = true, time.Now()
	sp.episodes++
	return true
}

// ok records a check that passed; it reports whether this ended an
// episode (and how long it lasted).
func (sp *spaceState) ok() (ended bool, lasted time.Duration) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if !sp.full {
		return false, 0
	}
	lasted = time.Since(sp.since)
	sp.full, sp.err, sp.since = false, nil, time.Time{}
	return true, lasted
}

func (sp *spaceState) status(fallback bool) StoreStatus {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	st := StoreStatus{Status: StatusOK, Episodes: sp.episodes, RefusedWrites: sp.refused.Load(), ReadOnlyFallback: fallback}
	if sp.full || fallback {
		st.Status, st.Since, st.Err = StatusStorageFull, sp.since, sp.err
	}
	return st
}

// checkWriteSpace checks the store's directory against
// Options.MinFreeBytes before a write, records the verdict (a change is
// logged once per episode), and switches a store opened degraded to
// read-write once the space is back. Callers must not hold closeMu.
func (s *Store) checkWriteSpace() error {
	if err := checkSpace(s.opts.Dir, s.opts.MinFreeBytes); err != nil {
		err = fmt.Errorf("write to store %q: %w", s.opts.Dir, err)
		s.space.refused.Add(1)
		if s.space.refuse(err) {
			s.log.Warn("store degraded: storage_full; writes are refused until disk space is freed", "dir", s.opts.Dir, "err", err)
		}
		return err
	}
	if ended, lasted := s.space.ok(); ended {
		s.log.Info("disk space is back: store writes resume", "dir", s.opts.Dir, "degraded_for", lasted.Round(time.Second))
	}
	return s.upgrade()
}

// errUpgradeLater is wrapped, with ErrDiskFull (the store is still in its
// storage_full episode for its callers), into the error of a write while
// the switch to read-write waits for another process to release the
// directory.
var errUpgradeLater = errors.New("the store is still read-only after the disk was full")

// upgrade switches a store opened degraded (read-only Badger, or an empty
// in-memory one) to a read-write Badger, now that the free space is back.
// It is a no-op for a store that is read-write already. When the switch
// fails (another process, say `edged people list`, holds the directory
// open), the read-only database is opened again and the write fails with
// the reason; the next write or Status retries after 10 s.
func (s *Store) upgrade() error {
	s.closeMu.RLock()
	mode, closed := s.degraded.mode, s.closed
	s.closeMu.RUnlock()
	if closed || (mode != modeDegraded && mode != modeDegradedFresh) {
		return nil
	}
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	mode = s.degraded.mode
	if s.closed || (mode != modeDegraded && mode != modeDegradedFresh) {
		return nil // switched by a concurrent caller
	}
	if time.Since(s.degraded.lastTry) < upgradeRetry {
		return fmt.Errorf("write to store %q: %w (%w; retrying shortly)", s.opts.Dir, errUpgradeLater, ErrDiskFull)
	}
	s.degraded.lastTry = time.Now()
	if err := s.db.Close(); err != nil {
		s.log.Warn("closing the degraded read-only store", "err", err)
	}
	if mode == modeDegradedFresh {
		if err := os.MkdirAll(s.opts.Dir, 0o700); err != nil {
			return s.reopenDegraded(mode, err)
		}
	}
	db, _, err := s.openDB(modeReadWrite)
	if err != nil {
		return s.reopenDegraded(mode, err)
	}
	s.db = db
	s.degraded.set(modeReadWrite)
	if err := s.afterOpen(); err != nil {
		// The schema check or the outbox state failed on the read-write
		// open, which Open had accepted read-only: keep it open, the
		// error goes to the write.
		s.log.Error("store switched to read-write, but its state did not load", "err", err)
		return fmt.Errorf("write to store %q: %w", s.opts.Dir, err)
	}
	s.log.Info("store switched to read-write: disk space is back", "dir", s.opts.Dir)
	return nil
}

// reopenDegraded opens the read-only database again after a failed switch
// (closeMu held for writing).
func (s *Store) reopenDegraded(mode openMode, cause error) error {
	s.log.Warn("store could not switch to read-write; staying read-only", "dir", s.opts.Dir, "err", cause)
	db, _, err := s.openDB(mode)
	if err != nil {
		// Neither: the store is unusable until restarted. Closing it
		// makes every call fail with ErrClosed rather than use a closed
		// Badger.
		s.log.Error("store could not be opened again: restart edged", "dir", s.opts.Dir, "err", err)
		s.closed = true
		close(s.done)
		return fmt.Errorf("write to store %q: %w", s.opts.Dir, err)
	}
	s.db = db
	return fmt.Errorf("write to store %q: %w (%w): %v", s.opts.Dir, errUpgradeLater, ErrDiskFull, cause)
}
