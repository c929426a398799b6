package store

import (
	"context"
	"errors"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// RunGC collects value-log garbage, and drops outbox events past
// Options.OutboxMaxAge, every Options.GCInterval until ctx is done or the
// store is closed; run it in its own goroutine. It returns nil
// when stopped by Close, ctx.Err() when stopped by ctx.
func (s *Store) RunGC(ctx context.Context) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	diskFull := false // logged once per outage, not every interval
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return nil
		case now := <-t.C:
			if n, err := s.PruneOutbox(now); err != nil && !errors.Is(err, ErrDiskFull) && !errors.Is(err, ErrClosed) {
				s.log.Warn("outbox age bound", "err", err)
			} else if n > 0 {
				s.log.Debug("outbox: events past their age bound dropped", "events", n)
			}
			n, err := s.CollectGarbage(ctx)
			switch {
			case errors.Is(err, ErrDiskFull):
				if !diskFull {
					s.log.Warn("value-log GC skipped until disk space is freed", "err", err)
				}
				diskFull = true
				continue
			case err != nil && !errors.Is(err, ErrClosed):
				s.log.Warn("value-log GC failed", "err", err)
			case n > 0:
				s.log.Debug("value-log GC", "files_rewritten", n)
			}
			if diskFull && err == nil {
				s.log.Info("value-log GC runs again: disk space was freed")
				diskFull = false
			}
		}
	}
}

// CollectGarbage runs value-log GC once: it rewrites value-log files that
// are at least GCDiscardRatio garbage, until none is left (or ctx is done).
// It returns how many files were rewritten. It gives ErrDiskFull, like a
// write, when the file system has less than Options.MinFreeBytes free.
func (s *Store) CollectGarbage(ctx context.Context) (int, error) {
	n := 0
	for ctx.Err() == nil {
		err := func() error {
			// GC rewrites live values into the current logs before it
			// deletes a file: it needs space like any write.
			if err := s.writable(); err != nil {
				return err
			}
			s.closeMu.RLock()
			defer s.closeMu.RUnlock()
			if err := s.writableLocked(); err != nil {
				return err
			}
			return s.db.RunValueLogGC(s.opts.GCDiscardRatio)
		}()
		switch {
		case err == nil:
			n++
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		default:
			return n, err
		}
	}
	return n, ctx.Err()
}
