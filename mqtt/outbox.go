package mqtt

import (
	"fmt"
	"sync"
)

// Event is one message waiting in the outbox.
type Event struct {
	Seq     uint64 // assigned by the outbox, strictly increasing in append order
	Topic   string // relative to the device base, e.g. "events/recognized" or "people/<id>/state"
	Payload []byte // JSON (see the payload types); empty with Retain clears a retained topic
	Retain  bool
}

// Outbox is the durable queue of events the Client drains. The store
// implements it in Badger; MemOutbox is an in-memory one for tests and tools.
//
// Contract:
//   - Pending returns up to max of the oldest events not yet acked, in Seq
//     order, without removing them; calling it again returns the same events
//     until they are acked.
//   - Ack removes the event with that Seq (acking an unknown Seq is not an
//     error: it may have been acked already).
//   - Notify returns a channel that receives a value after events are
//     appended (a non-blocking send into a channel of capacity 1 is enough;
//     the Client also polls, so a missed signal only adds latency).
//
// The Client calls Pending and Ack from one goroutine; appends come from
// others, so implementations must be safe for concurrent use.
type Outbox interface {
	Pending(max int) ([]Event, error)
	Ack(seq uint64) error
	Notify() <-chan struct{}
}

// MemOutbox is an in-memory Outbox. It is not durable: use it where losing
// queued events on exit is acceptable (tests, one-shot tools).
type MemOutbox struct {
	mu     sync.Mutex
	next   uint64
	events []Event // in Seq order
	notify chan struct{}
}

var _ Outbox = (*MemOutbox)(nil)

// NewMemOutbox returns an empty outbox.
func NewMemOutbox() *MemOutbox {
	return &MemOutbox{next: 1, notify: make(chan struct{}, 1)}
}

// Append queues an event and returns its Seq. The topic must pass
// CheckEventTopic.
func (o *MemOutbox) Append(e Event) (uint64, error) {
	if err := CheckEventTopic(e.Topic); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	o.mu.Lock()
	e.Seq = o.next
	o.next++
	e.Payload = append([]byte(nil), e.Payload...)
	o.events = append(o.events, e)
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return e.Seq, nil
}

// AppendPayload is Append(NewEvent(p)).
func (o *MemOutbox) AppendPayload(p Payload) (uint64, error) {
	e, err := NewEvent(p)
	if err != nil {
		return 0, err
	}
	return o.Append(e)
}

// Pending implements Outbox.
func (o *MemOutbox) Pending(max int) ([]Event, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(max, len(o.events))
	if n <= 0 {
		return nil, nil
	}
	return append([]Event(nil), o.events[:n]...), nil
}

// Ack implements Outbox.
func (o *MemOutbox) Ack(seq uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, e := range o.events {
		if e.Seq == seq {
			o.events = append(o.events[:i], o.events[i+1:]...)
			return nil
		}
		if e.Seq > seq {
			break
		}
	}
	return nil
}

// Notify implements Outbox.
func (o *MemOutbox) Notify() <-chan struct{} { return o.notify }

// Len is the number of events not yet acked.
func (o *MemOutbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.events)
}
