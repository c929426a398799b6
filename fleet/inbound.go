package fleet

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"sort"
	"sync"

	"github.com/edged-dev/edged/store"
)

// inbox holds received payloads until the worker takes them, in arrival
// order per topic. The MQTT receive path never blocks on it. Beyond
// InboxBytes it keeps only the latest copy per topic: a newer copy of a
// record supersedes an older one on its topic, and if both carried news
// their publishers see each other's copy and publish the merge, so
// nothing is lost for good.
type inbox struct {
	mu    sync.Mutex
	msgs  map[string][][]byte
	bytes int
	max   int
	wake  chan struct{}
}

type message struct {
	topic   string
	payload []byte
}

func (b *inbox) put(topic string, payload []byte) bool {
	b.mu.Lock()
	if b.msgs == nil {
		b.msgs = map[string][][]byte{}
	}
	if b.bytes+len(payload) > b.max {
		for _, old := range b.msgs[topic] {
			b.bytes -= len(old)
		}
		delete(b.msgs, topic)
		if b.bytes+len(payload) > b.max {
			b.mu.Unlock()
			return false
		}
	}
	b.msgs[topic] = append(b.msgs[topic], payload)
	b.bytes += len(payload)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

func (b *inbox) take() []message {
	b.mu.Lock()
	defer b.mu.Unlock()
	topics := make([]string, 0, len(b.msgs))
	for t := range b.msgs {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	var out []message
	for _, t := range topics {
		for _, p := range b.msgs[t] {
			out = append(out, message{t, p})
		}
	}
	b.msgs, b.bytes = nil, 0
	return out
}

func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.msgs)
}

// receive is the Transport's callback: bound, copy, queue. It never
// blocks and never fails.
func (s *Sync) receive(topic string, payload []byte) {
	s.m.received.Inc()
	s.m.receivedBytes.Add(float64(len(payload)))
	s.mu.Lock()
	s.lastRecv = s.opts.Now()
	s.mu.Unlock()
	if len(payload) > s.opts.MaxRecordBytes {
		s.refuse(topic, fmt.Errorf("%w: %d bytes (max %d)", ErrOversize, len(payload), s.opts.MaxRecordBytes))
		return
	}
	if !s.inbox.put(topic, bytes.Clone(payload)) {
		// Only when the inbox holds InboxBytes of distinct topics: the
		// retained copy comes back with the next resubscription.
		s.m.inboxFull.Inc()
		s.warnOnce("inbox-full", "fleet: inbox full; a record waits for the next resync", "topic", topic)
	}
}

// refuse counts and logs (once per topic and reason) a refused payload.
// A refused person record is replaced on the broker by this device's copy
// (at most once a minute per person), so that a forged or corrupt
// retained record does not keep new devices from catching up.
func (s *Sync) refuse(topic string, err error) {
	reason := refusal(err)
	s.m.refused.With(reason).Inc()
	s.mu.Lock()
	s.persist.Refused++
	s.mu.Unlock()
	s.warnOnce(topic+"\x00"+reason, "fleet: record refused", "topic", topic, "reason", reason, "err", err)
	kind, rest, ok := s.topics.parse(topic)
	if !ok || kind != "people" || len(rest) != 1 {
		return
	}
	id := rest[0]
	now := s.opts.Now().UnixMilli()
	s.mu.Lock()
	last := s.repaired[id]
	if now-last < 60_000 {
		s.mu.Unlock()
		return
	}
	s.repaired[id] = now
	s.mu.Unlock()
	err = s.st.Update(func(tx *store.Tx) error {
		b, err := tx.FleetGet(prefRecord + id)
		if err != nil || b == nil {
			return err
		}
		return tx.FleetPut(prefQueue+id, []byte(store.NewID()))
	})
	if err == nil {
		s.kick(s.pubWake)
	}
}

// decodeRecord opens, parses and checks a person record received on the
// topic of person id.
func (s *Sync) decodeRecord(topic, id string, payload []byte) (*Record, error) {
	plain, err := s.codec.open(topic, payload)
	if err != nil {
		return nil, err
	}
	r, err := unmarshalRecord(plain)
	if err != nil {
		return nil, err
	}
	if err := r.Validate(s.opts.limits()); err != nil {
		return nil, err
	}
	if r.Fleet != s.opts.Name || r.ID != id {
		return nil, fmt.Errorf("%w: record of fleet %q person %q on the topic of fleet %q person %q", ErrInvalid, r.Fleet, r.ID, s.opts.Name, id)
	}
	n := Normalize(r)
	if err := s.clock.Observe(n.HLC); err != nil {
		return nil, err
	}
	return n, nil
}

// receiveBatch decodes what the inbox held and applies it.
func (s *Sync) receiveBatch(ctx context.Context, msgs []message) {
	in := map[string]*Record{}
	var ids []string
	touch := func(id string) {
		if _, ok := in[id]; !ok {
			in[id] = nil
			ids = append(ids, id)
		}
	}
	var cropWrites []message
	for _, m := range msgs {
		kind, rest, ok := s.topics.parse(m.topic)
		if !ok {
			continue
		}
		switch {
		case kind == "people" && len(rest) == 1:
			if len(m.payload) == 0 {
				continue // cleared: an expired tombstone was collected
			}
			r, err := s.decodeRecord(m.topic, rest[0], m.payload)
			if err != nil {
				s.refuse(m.topic, err)
				continue
			}
			touch(r.ID)
			in[r.ID] = Merge(in[r.ID], r)
		case kind == "members" && len(rest) == 1:
			s.receiveMember(m.topic, rest[0], m.payload)
		case kind == "crops" && len(rest) == 2 && s.opts.ShareCrops:
			if len(m.payload) > 0 {
				plain, err := s.codec.open(m.topic, m.payload)
				if err == nil {
					if _, err = png.DecodeConfig(bytes.NewReader(plain)); err != nil {
						err = fmt.Errorf("%w: crop is not a PNG: %v", ErrInvalid, err)
					}
				}
				if err != nil {
					s.refuse(m.topic, err)
					continue
				}
				m.payload = plain
			}
			if validSegment(rest[0]) && validSegment(rest[1]) {
				cropWrites = append(cropWrites, message{rest[0] + "/" + rest[1], m.payload})
				touch(rest[0])
			}
		}
	}
	if len(cropWrites) > 0 {
		err := s.st.Update(func(tx *store.Tx) error {
			for _, c := range cropWrites {
				var err error
				if len(c.payload) == 0 {
					err = tx.FleetDelete(prefCrop + c.topic)
				} else {
					err = tx.FleetPut(prefCrop+c.topic, c.payload)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			s.log.Error("fleet: storing shared crops failed", "err", err)
		}
	}
	if len(ids) > 0 {
		sort.Strings(ids)
		s.apply(ctx, ids, in)
	}
}
