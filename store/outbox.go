package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// AppendEvents queues events in the transaction; they get their sequence
// numbers, in commit order, when the transaction commits (so an event such
// as "enrolled" is durable exactly when the enrollment is).
func (tx *Tx) AppendEvents(evs ...OutboxEvent) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	for _, ev := range evs {
		if ev.Topic == "" {
			return errors.New("outbox event without a topic")
		}
		if ev.Time.IsZero() {
			ev.Time = time.Now().UTC()
		}
		ev.Payload = append([]byte(nil), ev.Payload...)
		tx.events = append(tx.events, ev)
	}
	return nil
}

// AppendEvents durably appends events to the outbox, assigning increasing
// sequence numbers (the events' Seq fields are ignored), then signals
// OutboxNotify.
func (s *Store) AppendEvents(evs ...OutboxEvent) error {
	if len(evs) == 0 {
		return nil
	}
	return s.Update(func(tx *Tx) error { return tx.AppendEvents(evs...) })
}

// PendingEvents returns up to max events with Seq > after, in Seq order
// (max <= 0: all of them).
func (s *Store) PendingEvents(after uint64, max int) ([]OutboxEvent, error) {
	var out []OutboxEvent
	err := s.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefixOutbox)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(outboxKey(after + 1)); it.ValidForPrefix(opts.Prefix); it.Next() {
			if max > 0 && len(out) >= max {
				break
			}
			var ev OutboxEvent
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &ev) }); err != nil {
				return fmt.Errorf("%w: outbox event %x: %v", ErrCorrupt, it.Item().Key(), err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// AckEvent removes a published event from the outbox. Acknowledging an
// event that is not there (already acknowledged, or dropped by the
// outbox bounds while it was in flight) is not an error.
func (s *Store) AckEvent(seq uint64) error {
	if err := s.writable(); err != nil {
		return err
	}
	// Lock order: closeMu before outMu, everywhere. outMu keeps the
	// accounting in step with the commits (appends and drops take it too).
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	var rec outboxRecord
	var found bool
	err := s.updateRetry(func(tx *Tx) error {
		key := outboxKey(seq)
		item, err := tx.txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			found = false
			return nil
		}
		if err != nil {
			return err
		}
		if rec, err = readRecord(item); err != nil {
			return err
		}
		found = true
		return tx.txn.Delete(key)
	})
	if err == nil && found {
		s.out.remove(rec)
		s.out.maybeReportOutage(s.log, s.opts.OutboxMaxBytes)
	}
	return err
}

// OutboxNotify returns a channel that receives a value after events were
// appended (coalesced: one value may stand for several appends).
func (s *Store) OutboxNotify() <-chan struct{} { return s.outReady }

// OutboxLen returns the number of events waiting in the outbox.
func (s *Store) OutboxLen() (int, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.out.count, nil
}

// Reasons the outbox bounds drop events (OutboxStats.Dropped).
const (
	// DropSize: the outbox would have grown past Options.OutboxMaxBytes.
	DropSize = "size"
	// DropAge: the event waited longer than Options.OutboxMaxAge.
	DropAge = "age"
)

// OutboxStats are the outbox's figures, for metrics and the status.
type OutboxStats struct {
	Len   int   // events waiting
	Bytes int64 // their stored size (keys and values)
	// Dropped counts, by reason (DropSize, DropAge), the events the bounds
	// removed since Open before the broker acknowledged them.
	Dropped map[string]uint64
	// MaxBytes and MaxAge are the bounds in force (0: none).
	MaxBytes int64
	MaxAge   time.Duration
}

// OutboxStats returns the outbox's figures.
func (s *Store) OutboxStats() OutboxStats {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return OutboxStats{Len: s.out.count, Bytes: s.out.bytes,
		Dropped:  map[string]uint64{DropSize: s.out.dropped[dropSize], DropAge: s.out.dropped[dropAge]},
		MaxBytes: max(s.opts.OutboxMaxBytes, 0), MaxAge: max(s.opts.OutboxMaxAge, 0)}
}

// PruneOutbox drops the events older than Options.OutboxMaxAge (the
// newest retained event of each topic is kept: it is the state a
// subscriber must end up with) and returns how many it dropped. RunGC
// calls it at every interval; Open does not (a read-only store cannot).
func (s *Store) PruneOutbox(now time.Time) (int, error) {
	if s.opts.OutboxMaxAge <= 0 {
		return 0, nil
	}
	if err := s.writable(); err != nil {
		return 0, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if err := s.writableLocked(); err != nil {
		return 0, err
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	cutoff := now.Add(-s.opts.OutboxMaxAge)
	total := 0
	for {
		victims, err := s.outboxVictims(func(rec outboxRecord) (take, stop bool) {
			if !rec.Time.Before(cutoff) {
				return false, true // events are appended in time order
			}
			return true, false
		}, nil)
		if err != nil || len(victims) == 0 {
			return total, classify(err)
		}
		if err := s.dropEvents(victims, dropAge); err != nil {
			return total, classify(err)
		}
		total += len(victims)
	}
}

// dropEvents deletes victims in one transaction of blind deletes (no
// reads, so no conflict with the publisher's acks) and accounts for them
// (closeMu read-held, outMu held).
func (s *Store) dropEvents(victims []outboxRecord, reason int) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	for _, v := range victims {
		if err := txn.Delete(outboxKey(v.Seq)); err != nil {
			return err
		}
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	s.out.drop(victims, reason, s.log, s.opts)
	return nil
}

// maxVictims bounds the events one commit drops (Badger's transaction
// size; the next append or prune goes on).
const maxVictims = 2048

// outboxVictims walks the outbox from its oldest event and returns the
// events pick takes, until it says stop or maxVictims are found. The
// newest retained event of a topic is never a victim (nor one that
// newRetained, the retained topics of the commit in progress, does not
// supersede): dropping it would leave subscribers with a stale or, after
// a delete, a ghost retained state. Runs in its own read-only snapshot
// (closeMu read-held, outMu held).
func (s *Store) outboxVictims(pick func(outboxRecord) (take, stop bool), newRetained map[string]bool) ([]outboxRecord, error) {
	var out []outboxRecord
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefixOutbox)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid() && len(out) < maxVictims; it.Next() {
			rec, err := readRecord(it.Item())
			if err != nil {
				return err
			}
			if rec.Retain && !newRetained[rec.Topic] && s.out.latestRetained[rec.Topic] == rec.Seq {
				continue
			}
			take, stop := pick(rec)
			if stop {
				break
			}
			if take {
				out = append(out, rec)
			}
		}
		return nil
	})
	return out, err
}

// outboxRecord is what the accounting needs of a stored event.
type outboxRecord struct {
	Seq    uint64    `json:"seq"`
	Topic  string    `json:"topic"`
	Retain bool      `json:"retain,omitempty"`
	Time   time.Time `json:"time"`
	size   int64     // key and value bytes
}

func readRecord(item *badger.Item) (outboxRecord, error) {
	var rec outboxRecord
	err := item.Value(func(v []byte) error { return json.Unmarshal(v, &rec) })
	if err != nil {
		return rec, fmt.Errorf("%w: outbox event %x: %v", ErrCorrupt, item.Key(), err)
	}
	rec.size = int64(len(item.Key())) + item.ValueSize()
	return rec, nil
}

const (
	dropSize = iota
	dropAge
)

// outboxState is the outbox's accounting in memory, loaded at Open and
// kept in step under outMu.
type outboxState struct {
	count int
	bytes int64
	// latestRetained is the seq of the newest pending retained event of
	// each topic (bounded by the people and cameras).
	latestRetained map[string]uint64
	dropped        [2]uint64
	// outage counts the drops since the outage began; reported once when
	// the outbox is back below half its limit (or empty).
	outage [2]uint64
}

func (o *outboxState) init() { o.latestRetained = map[string]uint64{} }

func (o *outboxState) add(rec outboxRecord) {
	o.count++
	o.bytes += rec.size
	if rec.Retain && rec.Seq > o.latestRetained[rec.Topic] {
		o.latestRetained[rec.Topic] = rec.Seq
	}
}

func (o *outboxState) remove(rec outboxRecord) {
	o.count--
	o.bytes -= rec.size
	if rec.Retain && o.latestRetained[rec.Topic] == rec.Seq {
		delete(o.latestRetained, rec.Topic)
	}
}

// drop accounts for dropped events and logs the first drop of an outage.
func (o *outboxState) drop(victims []outboxRecord, reason int, log *slog.Logger, opts Options) {
	if o.outage[dropSize]+o.outage[dropAge] == 0 {
		log.Warn("outbox limit reached: dropping the oldest events the broker has not taken (reported again when it drains)",
			"reason", []string{DropSize, DropAge}[reason], "events", o.count, "bytes", o.bytes,
			"max_bytes", opts.OutboxMaxBytes, "max_age", opts.OutboxMaxAge)
	}
	for _, v := range victims {
		o.remove(v)
	}
	o.dropped[reason] += uint64(len(victims))
	o.outage[reason] += uint64(len(victims))
}

// maybeReportOutage logs, once per outage, how many events were dropped,
// when the outbox has drained below half its limit.
func (o *outboxState) maybeReportOutage(log *slog.Logger, maxBytes int64) {
	n := o.outage[dropSize] + o.outage[dropAge]
	if n == 0 || (o.count > 0 && maxBytes > 0 && o.bytes > maxBytes/2) {
		return
	}
	log.Warn("outbox drained: events were dropped during the outage", "dropped", n,
		"by_size", o.outage[dropSize], "by_age", o.outage[dropAge])
	o.outage = [2]uint64{}
}

// loadOutbox restores the last sequence number ever assigned, so numbers
// keep increasing across restarts even after the outbox was fully
// drained, and the accounting of the pending events (db used directly:
// called by Open and by the switch to read-write, under closeMu).
func (s *Store) loadOutbox() error {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.out.count, s.out.bytes = 0, 0
	s.out.latestRetained = map[string]uint64{}
	return s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyOutboxSeq))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("%w: bad outbox sequence record", ErrCorrupt)
				}
				s.outSeq = binary.BigEndian.Uint64(v)
				return nil
			}); err != nil {
				return err
			}
		}
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefixOutbox)
		it := txn.NewIterator(opts)
		defer it.Close()
		damaged := 0
		for it.Rewind(); it.Valid(); it.Next() {
			rec, err := readRecord(it.Item())
			if err != nil {
				// A damaged event must not keep the store from opening
				// (people, backups): it is counted, and PendingEvents
				// reports it.
				damaged++
				key := it.Item().Key()
				rec = outboxRecord{size: int64(len(key)) + it.Item().ValueSize()}
				if len(key) == len(prefixOutbox)+8 {
					rec.Seq = binary.BigEndian.Uint64(key[len(prefixOutbox):])
				}
			}
			s.out.add(rec)
		}
		if damaged > 0 {
			s.log.Error("outbox: events are unreadable (damaged value log?)", "events", damaged)
		}
		return nil
	})
}

func marshalEvent(ev OutboxEvent) ([]byte, error) { return json.Marshal(ev) }
