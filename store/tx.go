package store

import (
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// Tx is one transaction. Everything written through a Tx (people, samples,
// clusters, outbox events, ...) commits together or not at all. A Tx is not
// safe for concurrent use and is only valid inside the View or Update
// callback that received it.
type Tx struct {
	txn      *badger.Txn
	writable bool
	events   []OutboxEvent
}

// maxConflictRetries bounds how often Update re-runs a callback whose
// transaction lost a write conflict to a concurrent one.
const maxConflictRetries = 8

// View runs fn in a read-only transaction (a consistent snapshot).
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.view(func(txn *badger.Txn) error { return fn(&Tx{txn: txn}) })
}

// Update runs fn in a read-write transaction and commits it when fn returns
// nil. A file system with less than Options.MinFreeBytes free gives
// ErrDiskFull before fn runs. On a write conflict with a concurrent transaction fn runs again on a
// fresh snapshot, so it must not have side effects outside the Tx.
func (s *Store) Update(fn func(tx *Tx) error) error {
	if err := s.writable(); err != nil {
		return err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	return s.updateRetry(fn)
}

// updateRetry runs fn in read-write transactions until one commits
// without a write conflict (closeMu read-held, the store writable).
func (s *Store) updateRetry(fn func(tx *Tx) error) error {
	var err error
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		err = s.updateOnce(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return classify(err)
		}
	}
	return fmt.Errorf("update: gave up after %d write conflicts: %w", maxConflictRetries, err)
}

func (s *Store) updateOnce(fn func(tx *Tx) error) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	tx := &Tx{txn: txn, writable: true}
	if err := fn(tx); err != nil {
		return err
	}
	if len(tx.events) == 0 {
		return txn.Commit()
	}
	// Outbox events get their sequence numbers under outMu, which is held
	// until the commit is done: numbers are assigned in commit order and a
	// failed commit gives its numbers back.
	s.outMu.Lock()
	defer s.outMu.Unlock()
	seq := s.outSeq
	added := make([]outboxRecord, len(tx.events))
	var addedBytes int64
	newRetained := map[string]bool{}
	for i := range tx.events {
		seq++
		tx.events[i].Seq = seq
		b, err := marshalEvent(tx.events[i])
		if err != nil {
			return err
		}
		key := outboxKey(seq)
		if err := txn.Set(key, b); err != nil {
			return err
		}
		ev := tx.events[i]
		added[i] = outboxRecord{Seq: seq, Topic: ev.Topic, Retain: ev.Retain, Time: ev.Time, size: int64(len(key) + len(b))}
		addedBytes += added[i].size
		if ev.Retain {
			newRetained[ev.Topic] = true
		}
	}
	if err := txn.Set([]byte(keyOutboxSeq), be64(seq)); err != nil {
		return err
	}
	// The size bound: the oldest events the broker has not taken make
	// room, in this commit, so the outbox never holds more than
	// OutboxMaxBytes (unless only the newest retained states are left).
	victims, err := s.sizeVictims(addedBytes, newRetained)
	if err != nil {
		return err
	}
	for i, v := range victims {
		if err := txn.Delete(outboxKey(v.Seq)); err != nil {
			if errors.Is(err, badger.ErrTxnTooBig) {
				victims = victims[:i] // the next append drops the rest
				break
			}
			return err
		}
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	s.outSeq = seq
	for _, r := range added {
		s.out.add(r)
	}
	if len(victims) > 0 {
		s.out.drop(victims, dropSize, s.log, s.opts)
	}
	select {
	case s.outReady <- struct{}{}:
	default:
	}
	return nil
}

// sizeVictims returns the oldest events to drop so that the outbox plus
// adding bytes stays within OutboxMaxBytes (outMu held).
func (s *Store) sizeVictims(adding int64, newRetained map[string]bool) ([]outboxRecord, error) {
	limit := s.opts.OutboxMaxBytes
	over := s.out.bytes + adding - limit
	if limit <= 0 || over <= 0 {
		return nil, nil
	}
	var freed int64
	return s.outboxVictims(func(rec outboxRecord) (take, stop bool) {
		if freed >= over {
			return false, true
		}
		freed += rec.size
		return true, false
	}, newRetained)
}

// writable is the check before every write (callers do not hold
// closeMu): the store is open and not read-only, and the disk is above
// the reserve (a full disk must give ErrDiskFull, not a SIGBUS inside
// Badger's mmap'd logs). It switches a store opened degraded to
// read-write once the space is back.
func (s *Store) writable() error {
	s.closeMu.RLock()
	closed := s.closed
	s.closeMu.RUnlock()
	switch {
	case closed:
		return ErrClosed
	case s.opts.ReadOnly:
		return ErrReadOnly
	}
	return s.checkWriteSpace()
}

// writableLocked re-checks, under closeMu, what may have changed since
// writable: a concurrent Close.
func (s *Store) writableLocked() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.degraded.mode != modeReadWrite:
		// Only reachable when the check passed and the switch to
		// read-write failed in between: the switch reported why.
		return fmt.Errorf("write to store %q: %w (%w)", s.opts.Dir, errUpgradeLater, ErrDiskFull)
	}
	return nil
}

func (tx *Tx) checkWritable() error {
	if !tx.writable {
		return ErrReadOnly
	}
	return nil
}

// get returns a copy of the value at key, or badger.ErrKeyNotFound.
func (tx *Tx) get(key []byte) ([]byte, error) {
	item, err := tx.txn.Get(key)
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// scan calls fn with every key (and a copy of its value) under prefix, in
// key order. Stop early by returning errStop.
func (tx *Tx) scan(prefix []byte, withValues bool, fn func(key, val []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.PrefetchValues = withValues
	it := tx.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		var val []byte
		if withValues {
			var err error
			if val, err = item.ValueCopy(nil); err != nil {
				return err
			}
		}
		if err := fn(item.KeyCopy(nil), val); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

var errStop = errors.New("stop scan")

// deletePrefix deletes every key under prefix.
func (tx *Tx) deletePrefix(prefix []byte) error {
	var keys [][]byte
	if err := tx.scan(prefix, false, func(k, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
