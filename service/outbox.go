package service

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/store"
)

// StoreOutbox is the store's outbox as an mqtt.Outbox: the MQTT client
// publishes its events and acknowledges each once the broker has it, so a
// broker outage or a restart loses nothing.
//
// It reads from the last acknowledged sequence number on, not from the
// start of the outbox: an acknowledged event is a Badger tombstone until
// compaction, and a read from seq 1 would step over every one of them.
type StoreOutbox struct {
	st outboxStore

	mu sync.Mutex
	// done is a sequence number at or below which every event is gone
	// (acknowledged, or never there): Pending reads after it.
	done uint64
}

// outboxStore is the part of *store.Store the outbox uses.
type outboxStore interface {
	PendingEvents(after uint64, max int) ([]store.OutboxEvent, error)
	AckEvent(seq uint64) error
	OutboxNotify() <-chan struct{}
	OutboxLen() (int, error)
}

var _ mqtt.Outbox = (*StoreOutbox)(nil)

// NewStoreOutbox returns the outbox of st.
func NewStoreOutbox(st *store.Store) *StoreOutbox { return &StoreOutbox{st: st} }

// Pending implements mqtt.Outbox.
func (o *StoreOutbox) Pending(n int) ([]mqtt.Event, error) {
	o.mu.Lock()
	after := o.done
	o.mu.Unlock()
	evs, err := o.st.PendingEvents(after, n)
	if err != nil {
		return nil, err
	}
	if len(evs) > 0 {
		// The store makes events visible in sequence order (commits that
		// append are serialised), so nothing below the oldest one left can
		// still appear.
		o.mu.Lock()
		o.done = max(o.done, evs[0].Seq-1)
		o.mu.Unlock()
	}
	out := make([]mqtt.Event, len(evs))
	for i, e := range evs {
		out[i] = mqtt.Event{Seq: e.Seq, Topic: e.Topic, Payload: e.Payload, Retain: e.Retain}
	}
	return out, nil
}

// Ack implements mqtt.Outbox. Acknowledging the oldest event moves the
// start of the next Pending past it (the client acknowledges in order).
func (o *StoreOutbox) Ack(seq uint64) error {
	if err := o.st.AckEvent(seq); err != nil {
		return err
	}
	o.mu.Lock()
	if seq == o.done+1 {
		o.done = seq
	}
	o.mu.Unlock()
	return nil
}

// Notify implements mqtt.Outbox.
func (o *StoreOutbox) Notify() <-chan struct{} { return o.st.OutboxNotify() }

// Len is the number of events waiting.
func (o *StoreOutbox) Len() int {
	n, err := o.st.OutboxLen()
	if err != nil {
		return -1
	}
	return n
}

// OutboxEvent converts a payload into the store's outbox form.
func OutboxEvent(camera string, p mqtt.Payload, at time.Time) (store.OutboxEvent, error) {
	ev, err := mqtt.NewEvent(p)
	if err != nil {
		return store.OutboxEvent{}, err
	}
	if at.IsZero() {
		at = time.Now()
	}
	return store.OutboxEvent{Topic: ev.Topic, Payload: ev.Payload, Retain: ev.Retain, Camera: camera, Time: at.UTC()}, nil
}

// Observer sees every event the pipeline publishes (the service keeps each
// person's last sighting from them).
type Observer interface {
	Observe(e pipeline.Event)
}

// OutboxOutput is the pipeline's event output into the store's outbox: one
// transaction per batch, in order.
type OutboxOutput struct {
	st  *store.Store
	obs Observer
	log *slog.Logger
}

var _ pipeline.EventOutput = (*OutboxOutput)(nil)

// NewOutboxOutput returns the output; obs and log may be nil.
func NewOutboxOutput(st *store.Store, obs Observer, log *slog.Logger) *OutboxOutput {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &OutboxOutput{st: st, obs: obs, log: log}
}

// Name implements pipeline.Named.
func (o *OutboxOutput) Name() string { return "outbox" }

// WriteEvents implements pipeline.EventOutput: the batch is appended in one
// transaction (a failure is retried by the pipeline). An event that can
// never become an MQTT message (a topic-unsafe id) is logged and skipped,
// since retrying cannot fix it.
func (o *OutboxOutput) WriteEvents(events []pipeline.Event) error {
	evs := make([]store.OutboxEvent, 0, len(events))
	now := time.Now()
	for _, e := range events {
		p, ok := e.Payload.(mqtt.Payload)
		if !ok {
			return fmt.Errorf("event of type %T is not an MQTT payload", e.Payload)
		}
		ev, err := OutboxEvent(e.Camera, p, now)
		if err != nil {
			o.log.Error("event cannot be published: skipped", "camera", e.Camera, "topic", p.Topic(), "err", err)
			continue
		}
		evs = append(evs, ev)
	}
	if err := o.st.AppendEvents(evs...); err != nil {
		return err
	}
	if o.obs != nil {
		for _, e := range events {
			o.obs.Observe(e)
		}
	}
	return nil
}

// Close implements pipeline.EventOutput (the store is closed by its owner).
func (o *OutboxOutput) Close() error { return nil }
