package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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
// event that is not there (already acknowledged) is not an error.
func (s *Store) AckEvent(seq uint64) error {
	return s.Update(func(tx *Tx) error { return tx.txn.Delete(outboxKey(seq)) })
}

// OutboxNotify returns a channel that receives a value after events were
// appended (coalesced: one value may stand for several appends).
func (s *Store) OutboxNotify() <-chan struct{} { return s.outReady }

// OutboxLen returns the number of events waiting in the outbox.
func (s *Store) OutboxLen() (int, error) {
	n := 0
	err := s.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefixOutbox)
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// loadOutboxSeq restores the last sequence number ever assigned, so numbers
// keep increasing across restarts even after the outbox was fully drained.
func (s *Store) loadOutboxSeq() error {
	return s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyOutboxSeq))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: bad outbox sequence record", ErrCorrupt)
			}
			s.outSeq = binary.BigEndian.Uint64(v)
			return nil
		})
	})
}

func marshalEvent(ev OutboxEvent) ([]byte, error) { return json.Marshal(ev) }
