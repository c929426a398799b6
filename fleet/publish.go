package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/edged-dev/edged/store"
)

// publishLoop publishes the queued records and crops and keeps the member
// record fresh, with backoff while the broker is unreachable. Queue
// entries leave the store only after the broker acknowledged them, so a
// broker outage or a restart loses nothing.
func (s *Sync) publishLoop(ctx context.Context) {
	delay := s.opts.RetryMin
	var memberDue, lastMember time.Time
	for {
		if ctx.Err() != nil {
			return
		}
		failed := false
		if s.memberDirty.Swap(false) {
			// The people count changed: refresh the member record soon
			// (at most every few seconds).
			if soon := lastMember.Add(memberMinInterval); soon.Before(memberDue) {
				memberDue = soon
			}
		}
		if !time.Now().Before(memberDue) {
			if s.publishMember(true) {
				lastMember = time.Now()
				memberDue = lastMember.Add(s.opts.MemberInterval)
			} else {
				failed = true
			}
		}
		more, err := s.publishPending(ctx)
		if err != nil {
			failed = true
			s.warnOnce("publish-failed", "fleet: publishing failed; retrying with backoff (the queue is kept in the store)", "err", err)
		}
		wait := time.Until(memberDue)
		switch {
		case failed:
			wait = delay
			delay = min(delay*2, s.opts.RetryMax)
		case more:
			delay = s.opts.RetryMin
			continue
		default:
			if delay > s.opts.RetryMin {
				s.log.Info("fleet: publishing again")
				s.mu.Lock()
				delete(s.warned, "publish-failed")
				s.mu.Unlock()
			}
			delay = s.opts.RetryMin
		}
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.pubWake:
			if failed {
				delay = s.opts.RetryMin // a reconnection: try at once
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// memberMinInterval spaces member records published because the people
// count changed.
const memberMinInterval = 5 * time.Second

type queued struct {
	id      string
	nonce   []byte
	payload []byte // nil: clear the topic (garbage)
	garbage bool
}

// publishPending publishes up to one batch of queued records and crops;
// more reports that the queue holds more.
func (s *Sync) publishPending(ctx context.Context) (more bool, err error) {
	const batch = 64
	var recs []queued
	var crops []queued
	now := s.opts.Now().UnixMilli()
	err = s.st.View(func(tx *store.Tx) error {
		err := tx.FleetScan(prefQueue, func(k string, v []byte) error {
			if len(recs) == batch {
				more = true
				return store.ErrStopScan
			}
			id := k[len(prefQueue):]
			q := queued{id: id, nonce: v}
			r, err := loadRecord(tx, id)
			if err != nil {
				s.log.Error("fleet: unreadable record dropped from the publish queue", "person", id, "err", err)
				recs = append(recs, q) // cleared below without publishing
				return nil
			}
			if r == nil {
				recs = append(recs, q)
				return nil
			}
			c, garbage := Compact(r, now)
			q.garbage = garbage
			if !garbage {
				b, err := marshalRecord(c)
				if err != nil {
					return err
				}
				if q.payload, err = s.codec.seal(s.topics.Person(id), b); err != nil {
					return err
				}
			}
			recs = append(recs, q)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.FleetScan(prefCropQ, func(k string, v []byte) error {
			if len(crops) == batch {
				more = true
				return store.ErrStopScan
			}
			rest := k[len(prefCropQ):]
			person, sample, _ := strings.Cut(rest, "/")
			q := queued{id: rest, nonce: v}
			if string(v) == "p" {
				b, err := tx.Crop(person, sample)
				if err == nil && b == nil {
					b, err = tx.NegativeCrop(person, sample)
				}
				if err != nil {
					return err
				}
				if b != nil {
					if q.payload, err = s.codec.seal(s.topics.Crop(person, sample), b); err != nil {
						return err
					}
				} else {
					q.nonce = nil // the sample is gone: nothing to publish
				}
			}
			crops = append(crops, q)
			return nil
		})
	})
	if err != nil {
		return false, err
	}
	// Publish with a few in flight (records of different people are
	// independent), then clear the queue entries of everything the broker
	// acknowledged in one transaction.
	type job struct {
		topic, key string
		payload    []byte // nil: no publish, only dequeue
		nonce      []byte
		garbage    *queued
	}
	var jobs []job
	for i := range recs {
		q := &recs[i]
		j := job{topic: s.topics.Person(q.id), key: prefQueue + q.id, nonce: q.nonce}
		switch {
		case q.garbage:
			j.payload, j.garbage = []byte{}, q
		case q.payload == nil:
		case len(q.payload) > s.opts.MaxRecordBytes:
			s.m.publishErrors.Inc()
			s.log.Error("fleet: a record is over max_record_bytes and cannot be published; lower fleet.max_samples or raise fleet.max_record_bytes on every device",
				"person", q.id, "bytes", len(q.payload), "max", s.opts.MaxRecordBytes)
		default:
			j.payload = q.payload
		}
		jobs = append(jobs, j)
	}
	for _, q := range crops {
		person, sample, _ := strings.Cut(q.id, "/")
		j := job{topic: s.topics.Crop(person, sample), key: prefCropQ + q.id, nonce: q.nonce}
		switch {
		case string(q.nonce) == "d":
			j.payload = []byte{}
		case q.payload != nil && len(q.payload) <= s.opts.MaxRecordBytes:
			j.payload = q.payload
		}
		jobs = append(jobs, j)
	}
	const inflight = 8
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	for i, j := range jobs {
		if j.payload == nil {
			continue
		}
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = s.publish(j.topic, j.payload)
		}()
	}
	wg.Wait()
	var done []job
	for i, j := range jobs {
		switch {
		case errs[i] != nil:
			if err == nil {
				err = errs[i]
			}
		case j.garbage != nil:
			s.forget(*j.garbage)
		default:
			done = append(done, j)
		}
	}
	keys := make([]string, len(done))
	nonces := make([][]byte, len(done))
	for i, j := range done {
		keys[i], nonces[i] = j.key, j.nonce
	}
	s.dequeue(keys, nonces)
	if err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		return false, err
	}
	return more, nil
}

func (s *Sync) publish(topic string, payload []byte) error {
	if err := s.opts.Transport.Publish(topic, payload, true); err != nil {
		s.m.publishErrors.Inc()
		return err
	}
	s.m.published.Inc()
	s.m.publishedBytes.Add(float64(len(payload)))
	s.mu.Lock()
	s.lastPub = s.opts.Now()
	s.mu.Unlock()
	return nil
}

// dequeue removes queue entries, except those re-queued since they were
// read (their nonce changed; a nil nonce: unconditionally).
func (s *Sync) dequeue(keys []string, nonces [][]byte) {
	if len(keys) == 0 {
		return
	}
	err := s.st.Update(func(tx *store.Tx) error {
		for i, key := range keys {
			cur, err := tx.FleetGet(key)
			if err != nil {
				return err
			}
			if cur == nil || nonces[i] != nil && !bytes.Equal(cur, nonces[i]) {
				continue
			}
			if err := tx.FleetDelete(key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrClosed) {
		s.log.Warn("fleet: clearing publish queue entries failed; they are published again", "entries", len(keys), "err", err)
	}
}

// forget drops a collected record once its topic was cleared.
func (s *Sync) forget(q queued) {
	now := s.opts.Now().UnixMilli()
	err := s.st.Update(func(tx *store.Tx) error {
		cur, err := tx.FleetGet(prefQueue + q.id)
		if err != nil || !bytes.Equal(cur, q.nonce) {
			return err
		}
		r, err := loadRecord(tx, q.id)
		if err != nil {
			return err
		}
		if r != nil {
			if _, garbage := Compact(r, now); !garbage {
				return nil
			}
		}
		for _, k := range []string{prefRecord, prefApplied, prefQueue, prefSkip} {
			if err := tx.FleetDelete(k + q.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrClosed) {
		s.log.Warn("fleet: forgetting an expired record failed", "person", q.id, "err", err)
	}
}

// Member is a device's presence in the fleet: retained on
// edged/fleet/<name>/members/<device>, refreshed every MemberInterval and
// marked offline on a clean stop. The JSON schema is
// docs/schema/fleet/member.json.
type Member struct {
	V          int       `json:"v"`
	Fleet      string    `json:"fleet"`
	Device     string    `json:"device"`
	Backbone   string    `json:"backbone"`
	Version    string    `json:"version,omitempty"`
	Online     bool      `json:"online"`
	People     int       `json:"people"` // people in the device's store
	ShareCrops bool      `json:"share_crops"`
	Seen       time.Time `json:"seen"` // when the device wrote this
	HLC        HLC       `json:"hlc"`  // the device's clock then
}

func unmarshalMember(b []byte, m *Member) error {
	if err := json.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: member: %v", ErrCorrupt, err)
	}
	if m.V != RecordVersion {
		return fmt.Errorf("%w: member v=%d", ErrVersion, m.V)
	}
	if !ValidName(m.Device) || len(m.Backbone) > 64 || len(m.Version) > 64 {
		return fmt.Errorf("%w: member", ErrInvalid)
	}
	return nil
}

// publishMember publishes this device's member record; it reports
// success.
func (s *Sync) publishMember(online bool) bool {
	people := 0
	_ = s.st.View(func(tx *store.Tx) error {
		ps, err := tx.People()
		people = len(ps)
		return err
	})
	m := Member{V: RecordVersion, Fleet: s.opts.Name, Device: s.opts.Device, Backbone: s.opts.Backbone,
		Version: s.opts.Version, Online: online, People: people, ShareCrops: s.opts.ShareCrops,
		Seen: s.opts.Now().UTC().Truncate(time.Millisecond), HLC: s.clock.Last()}
	b, err := json.Marshal(m)
	if err != nil {
		return false
	}
	topic := s.topics.Member(s.opts.Device)
	payload, err := s.codec.seal(topic, b)
	if err != nil {
		return false
	}
	if err := s.publish(topic, payload); err != nil {
		return false
	}
	s.mu.Lock()
	s.connected = true
	s.mu.Unlock()
	return true
}

func (s *Sync) receiveMember(topic, device string, payload []byte) {
	if len(payload) == 0 {
		return
	}
	plain, err := s.codec.open(topic, payload)
	if err != nil {
		s.refuse(topic, err)
		return
	}
	var m Member
	if err := unmarshalMember(plain, &m); err != nil {
		s.refuse(topic, err)
		return
	}
	if m.Device != device || m.Fleet != s.opts.Name {
		s.refuse(topic, fmt.Errorf("%w: member %q of fleet %q on the topic of %q", ErrInvalid, m.Device, m.Fleet, device))
		return
	}
	if m.Device == s.opts.Device {
		return
	}
	s.mu.Lock()
	old, seen := s.members[m.Device]
	s.members[m.Device] = m
	s.mu.Unlock()
	if !seen {
		s.log.Info("fleet member seen", "device", m.Device, "backbone", m.Backbone, "online", m.Online)
		if m.Backbone != s.opts.Backbone && !(m.ShareCrops && s.opts.ShareCrops) {
			s.log.Warn("fleet member uses another backbone and crops are not shared both ways: its enrollments cannot be recognised here, nor this device's there",
				"device", m.Device, "its_backbone", m.Backbone, "backbone", s.opts.Backbone)
		}
	} else if old.Online != m.Online {
		s.log.Info("fleet member", "device", m.Device, "online", m.Online)
	}
	if !seen || old.Online != m.Online || m.Seen.Sub(old.Seen) > 10*time.Minute {
		_ = s.st.Update(func(tx *store.Tx) error { return tx.FleetPut(prefMember+m.Device, plain) })
	}
}
