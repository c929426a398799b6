package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-dev/edged/store"
)

// Sync keeps one device's people in step with its fleet through the MQTT
// broker. The device's store stays the source of its own truth: local
// changes are folded into the person's record and queued for publishing
// in the store (so a broker outage loses nothing), records from other
// devices are merged (Merge) and projected onto the store with the same
// person and sample ids.
//
// Lifecycle: New, then Run(ctx) until ctx ends. Changed, Status and Resync
// are safe for concurrent use from any goroutine, before, during and after
// Run.
type Sync struct {
	opts   Options
	log    *slog.Logger
	topics Topics
	codec  *codec
	clock  *Clock
	st     *store.Store
	m      *fleetMetrics

	inbox inbox

	mu        sync.Mutex
	changed   map[string]bool // persons to fold (Changed)
	resync    bool
	members   map[string]Member
	retry     map[string]*Record // received copies whose apply failed
	warned    map[string]bool    // topic+reason logged
	repaired  map[string]int64   // person -> last repair publish (ms)
	lastSync  time.Time          // last change from another device applied
	lastPub   time.Time          // last successful publish
	lastRecv  time.Time
	connected bool
	persist   persisted

	wake        chan struct{} // the worker has work
	pubWake     chan struct{} // the publisher has work
	nested      bool          // syncPerson runs for a name clash (worker goroutine only)
	running     atomic.Bool
	memberDirty atomic.Bool // the people count may have changed
	idle        atomic.Bool // for tests: nothing queued and the worker waits
}

// New checks the options and returns a Sync; nothing is subscribed or
// published before Run.
func New(opts Options) (*Sync, error) {
	opts.fill()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	c, err := newCodec(opts.Key)
	if err != nil {
		return nil, err
	}
	s := &Sync{
		opts:     opts,
		log:      opts.Logger.With("component", "fleet", "fleet", opts.Name),
		topics:   NewTopics(opts.Prefix, opts.Name),
		codec:    c,
		clock:    NewClock(opts.Device, opts.Now, opts.MaxClockSkew),
		st:       opts.Store,
		changed:  map[string]bool{},
		members:  map[string]Member{},
		retry:    map[string]*Record{},
		warned:   map[string]bool{},
		repaired: map[string]int64{},
		wake:     make(chan struct{}, 1),
		pubWake:  make(chan struct{}, 1),
	}
	s.inbox.max = opts.InboxBytes
	s.inbox.wake = s.wake
	s.m = newFleetMetrics(opts.Metrics, s)
	return s, nil
}

// Topics returns the fleet's topic layout.
func (s *Sync) Topics() Topics { return s.topics }

// Changed tells the fleet that the daemon changed these people locally
// (enroll, rename, delete, feedback, sample removal): their records are
// updated from the store and published. It never blocks; changes the
// daemon does not report are found by the periodic reconciliation.
func (s *Sync) Changed(personIDs ...string) {
	s.mu.Lock()
	for _, id := range personIDs {
		if validSegment(id) {
			s.changed[id] = true
		}
	}
	s.mu.Unlock()
	s.kick(s.wake)
}

// Resync re-reads every local person and republishes every record (the
// MQTT fleet command's "resync"; after restoring a backup, or to repair a
// broker that lost its retained messages).
func (s *Sync) Resync() {
	s.mu.Lock()
	s.resync = true
	s.mu.Unlock()
	s.kick(s.wake)
}

func (s *Sync) kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run subscribes to the fleet's topics, reconciles the store with the
// records, then applies records from the broker, folds and publishes local
// changes, refreshes the member record and collects expired tombstones
// until ctx ends. It returns nil then (ctx's cancellation is the normal
// end), or an error when it cannot start.
func (s *Sync) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("fleet: Run called twice")
	}
	if err := s.loadState(); err != nil {
		return err
	}
	filters := []string{s.topics.People(), s.topics.Members()}
	if s.opts.ShareCrops {
		filters = append(filters, s.topics.Crops())
	}
	for _, f := range filters {
		if err := s.opts.Transport.Subscribe(f, s.receive); err != nil {
			return fmt.Errorf("fleet: subscribe %s: %w", f, err)
		}
	}
	if cn, ok := s.opts.Transport.(ConnectNotifier); ok {
		cn.OnConnect(func() { s.kick(s.pubWake) })
	}
	s.log.Info("fleet sync started", "device", s.opts.Device, "backbone", s.opts.Backbone,
		"encrypted", s.codec.encrypted(), "share_crops", s.opts.ShareCrops)
	var wg sync.WaitGroup
	pubCtx, stopPub := context.WithCancel(context.Background())
	wg.Add(1)
	go func() { defer wg.Done(); s.publishLoop(pubCtx) }()
	defer func() {
		// The worker stops first (nothing new gets queued), then the
		// publisher, after one last attempt at the member record.
		stopPub()
		wg.Wait()
		s.publishMember(false)
		s.savePersisted()
		s.log.Info("fleet sync stopped")
	}()

	s.reconcile(true)
	recon := time.NewTicker(s.opts.ReconcileInterval)
	defer recon.Stop()
	gc := time.NewTicker(gcInterval(s.opts.TombstoneTTL))
	defer gc.Stop()
	retry := time.NewTicker(retryInterval)
	defer retry.Stop()
	for {
		s.idle.Store(s.quiet())
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
			s.idle.Store(false)
			s.work(ctx)
		case <-recon.C:
			s.reconcile(false)
		case <-gc.C:
			s.collect()
		case <-retry.C:
			s.retryFailed(ctx)
		}
	}
}

// retryInterval is how often received copies that failed to apply are
// tried again.
const retryInterval = 30 * time.Second

func (s *Sync) retryFailed(ctx context.Context) {
	s.mu.Lock()
	in := s.retry
	s.retry = map[string]*Record{}
	s.mu.Unlock()
	if len(in) == 0 {
		return
	}
	ids := make([]string, 0, len(in))
	for id := range in {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	s.apply(ctx, ids, in)
}

func gcInterval(ttl time.Duration) time.Duration {
	return min(time.Hour, max(time.Second, ttl/4))
}

// quiet reports whether nothing waits for the worker.
func (s *Sync) quiet() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.changed) == 0 && !s.resync && s.inbox.len() == 0
}

// work handles everything queued: local changes, then records.
func (s *Sync) work(ctx context.Context) {
	for {
		s.mu.Lock()
		ids := make([]string, 0, len(s.changed))
		for id := range s.changed {
			ids = append(ids, id)
		}
		clear(s.changed)
		resync := s.resync
		s.resync = false
		s.mu.Unlock()
		msgs := s.inbox.take()
		if len(ids) == 0 && len(msgs) == 0 && !resync {
			return
		}
		if resync {
			s.reconcile(true)
			s.republishAll()
		}
		if len(ids) > 0 {
			sort.Strings(ids)
			s.apply(ctx, ids, nil)
		}
		if len(msgs) > 0 {
			s.receiveBatch(ctx, msgs)
		}
	}
}

// reconcile folds every local person (and, at start, every record: the
// backbone may have changed).
func (s *Sync) reconcile(all bool) {
	ids := map[string]bool{}
	err := s.st.View(func(tx *store.Tx) error {
		ps, err := tx.People()
		if err != nil {
			return err
		}
		for _, p := range ps {
			ids[p.ID] = true
		}
		prefixes := []string{prefApplied}
		if all {
			prefixes = append(prefixes, prefRecord)
		}
		for _, pre := range prefixes {
			if err := tx.FleetKeys(pre, func(k string) error { ids[k[len(pre):]] = true; return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("fleet reconcile: reading the store failed", "err", err)
		return
	}
	list := make([]string, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	sort.Strings(list)
	s.apply(context.Background(), list, nil)
}

// apply runs syncPerson for ids (with their incoming records, when given)
// in transactions of a bounded size, then reports and re-embeds.
func (s *Sync) apply(ctx context.Context, ids []string, in map[string]*Record) {
	const maxBatchBytes = 256 << 10
	for start := 0; start < len(ids); {
		end, size := start, 0
		for end < len(ids) && (end == start || size < maxBatchBytes) && end-start < 64 {
			size += recordSize(in[ids[end]])
			end++
		}
		n := s.applyBatch(ctx, ids[start:end], in)
		start += n
	}
}

func recordSize(r *Record) int {
	if r == nil {
		return 4 << 10
	}
	n := 512
	for _, list := range [][]Sample{r.Samples, r.Negatives} {
		for _, x := range list {
			for _, v := range x.Vecs {
				n += 6*len(v.Data) + 100 // the record's copy and the sample's
			}
		}
	}
	return n
}

// applyBatch applies a batch in one transaction and returns how many ids
// it handled (fewer than asked when the transaction was too big: the rest
// go in the next one).
func (s *Sync) applyBatch(ctx context.Context, ids []string, in map[string]*Record) int {
	type result struct {
		id string
		o  outcome
	}
	var results []result
	n := len(ids)
	for {
		results = results[:0]
		err := s.st.Update(func(tx *store.Tx) error {
			results = results[:0]
			for _, id := range ids[:n] {
				o, err := s.syncPerson(tx, id, in[id])
				if err != nil {
					return fmt.Errorf("person %s: %w", id, err)
				}
				results = append(results, result{id, o})
				if o.change != nil && s.opts.Events != nil {
					if err := tx.AppendEvents(s.opts.Events(*o.change)...); err != nil {
						return err
					}
				}
			}
			return s.saveClock(tx)
		})
		if errors.Is(err, store.ErrTxnTooBig) && n > 1 {
			n /= 2
			continue
		}
		if err != nil {
			if n > 1 {
				// One bad person must not block the others: retry one by
				// one, and log the one that fails.
				for i := 0; i < n; i++ {
					s.applyBatch(ctx, ids[i:i+1], in)
				}
				return n
			}
			s.m.applyErrors.Inc()
			s.log.Error("fleet: applying a person failed; retried in a while", "person", ids[0], "err", err)
			if r := in[ids[0]]; r != nil {
				// The copy came from the broker once; keep it for the retry
				// (a full disk, a store switched to read-only).
				s.mu.Lock()
				s.retry[ids[0]] = Merge(s.retry[ids[0]], r)
				s.mu.Unlock()
			}
			return n
		}
		break
	}
	var changes []Change
	var reembed []result
	publish := false
	for _, r := range results {
		o := r.o
		if o.change != nil {
			changes = append(changes, *o.change)
			s.m.changes.With(o.change.Kind).Inc()
		}
		if o.conflict {
			s.m.conflicts.Inc()
			s.mu.Lock()
			s.persist.Conflicts++
			s.mu.Unlock()
		}
		if o.publish || len(o.cropsPut) > 0 || len(o.cropsDel) > 0 {
			publish = true
		}
		if len(o.reembed) > 0 {
			reembed = append(reembed, r)
		}
		if o.report {
			s.reportSkip(o.name, r.id, o.skipped)
		}
	}
	if len(changes) > 0 {
		now := s.opts.Now()
		s.mu.Lock()
		s.lastSync = now
		s.persist.LastSync = now
		s.persist.Applied += uint64(len(changes))
		s.mu.Unlock()
		for _, c := range changes {
			s.log.Info("fleet change applied", "person", c.PersonID, "name", c.Name, "change", c.Kind,
				"origin", c.Origin, "added", c.SamplesAdded, "removed", c.SamplesRemoved)
		}
		if s.opts.OnChange != nil {
			s.opts.OnChange(changes)
		}
	}
	if publish || len(changes) > 0 {
		s.memberDirty.Store(true)
		s.kick(s.pubWake)
	}
	for _, r := range reembed {
		s.reembed(ctx, r.id, r.o.reembed)
	}
	return n
}

// reembed computes this device's vectors of shared crops and stores the
// samples; their new vectors go back into the record (other devices of
// this backbone then need no crop).
func (s *Sync) reembed(ctx context.Context, person string, sampleIDs []string) {
	var crops [][]byte
	var ids []string
	_ = s.st.View(func(tx *store.Tx) error {
		for _, sid := range sampleIDs {
			if b, err := tx.FleetGet(prefCrop + person + "/" + sid); err == nil && b != nil {
				crops = append(crops, b)
				ids = append(ids, sid)
			}
		}
		return nil
	})
	if len(crops) == 0 {
		return
	}
	vecs, err := s.opts.Reembed(ctx, crops)
	if err == nil && len(vecs) != len(crops) {
		err = fmt.Errorf("%d vectors for %d crops", len(vecs), len(crops))
	}
	if err != nil {
		s.m.reembedErrors.Inc()
		s.log.Error("fleet: re-embedding shared crops failed", "person", person, "crops", len(crops), "err", err)
		return
	}
	var ch *Change
	err = s.st.Update(func(tx *store.Tx) error {
		ch = nil
		rp, err := loadRecord(tx, person)
		if err != nil || rp == nil {
			return err
		}
		if _, err := tx.Person(person); errors.Is(err, store.ErrPersonNotFound) {
			localName, err := s.localName(tx, rp)
			if err != nil {
				return err
			}
			p := store.Person{ID: person, Name: localName, Created: rp.Created}
			if err := tx.PutPerson(&p); err != nil {
				return err
			}
			if err := putJSON(tx, prefApplied+person, &applied{Name: localName}); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		added := 0
		for i, sid := range ids {
			var img store.Images
			if s.opts.KeepCrops {
				img.Crop = crops[i]
			}
			if rs, ok := findSample(rp.Samples, sid); ok {
				x := store.Sample{ID: sid, PersonID: person, Embedding: vecs[i], Backbone: s.opts.Backbone,
					Quality: rs.Quality, Source: rs.Source, Ref: "fleet:" + rs.HLC.Device, Created: rs.Created}
				if err := tx.AddSampleWith(&x, img); err != nil {
					return err
				}
			} else if rs, ok := findSample(rp.Negatives, sid); ok {
				n := store.Negative{ID: sid, PersonID: person, Embedding: vecs[i], Backbone: s.opts.Backbone,
					Source: rs.Source, Ref: "fleet:" + rs.HLC.Device, Created: rs.Created}
				if err := tx.AddNegativeWith(&n, img.Crop); err != nil {
					return err
				}
			} else {
				continue
			}
			added++
			if err := tx.FleetDelete(prefCrop + person + "/" + sid); err != nil {
				return err
			}
		}
		o, err := s.syncPerson(tx, person, nil)
		if err != nil {
			return err
		}
		if added > 0 {
			c := Change{PersonID: person, Name: o.name, Kind: ChangeUpdated, Origin: rp.Origin, Version: rp.HLC.String(), SamplesAdded: added}
			if o.change != nil {
				c.Kind = o.change.Kind
			}
			ch = &c
			if s.opts.Events != nil {
				if err := tx.AppendEvents(s.opts.Events(c)...); err != nil {
					return err
				}
			}
		}
		return s.saveClock(tx)
	})
	if err != nil {
		s.m.reembedErrors.Inc()
		s.log.Error("fleet: storing re-embedded samples failed", "person", person, "err", err)
		return
	}
	s.m.reembedded.Add(float64(len(ids)))
	s.log.Info("fleet: re-embedded shared crops", "person", person, "samples", len(ids), "backbone", s.opts.Backbone)
	if ch != nil && s.opts.OnChange != nil {
		s.opts.OnChange([]Change{*ch})
	}
	s.kick(s.pubWake)
}

func (s *Sync) saveClock(tx *store.Tx) error {
	return tx.FleetPut(keyHLC, []byte(s.clock.Last().String()))
}

// loadState restores the clock, the counters and the members seen.
func (s *Sync) loadState() error {
	return s.st.View(func(tx *store.Tx) error {
		b, err := tx.FleetGet(keyHLC)
		if err != nil {
			return err
		}
		if b != nil {
			h, err := ParseHLC(string(b))
			if err != nil {
				return fmt.Errorf("fleet clock: %w", err)
			}
			s.clock.Restore(h)
		}
		var p persisted
		if _, err := getJSON(tx, keyStat, &p); err != nil {
			s.log.Warn("fleet counters unreadable; starting from zero", "err", err)
		}
		s.mu.Lock()
		s.persist = p
		s.lastSync = p.LastSync
		s.mu.Unlock()
		return tx.FleetScan(prefMember, func(k string, v []byte) error {
			var m Member
			if err := unmarshalMember(v, &m); err == nil && m.Device != s.opts.Device {
				s.mu.Lock()
				s.members[m.Device] = m
				s.mu.Unlock()
			}
			return nil
		})
	})
}

func (s *Sync) savePersisted() {
	s.mu.Lock()
	p := s.persist
	p.Backbone = s.opts.Backbone
	s.mu.Unlock()
	err := s.st.Update(func(tx *store.Tx) error {
		if err := putJSON(tx, keyStat, p); err != nil {
			return err
		}
		return s.saveClock(tx)
	})
	if err != nil && !errors.Is(err, store.ErrClosed) {
		s.log.Warn("fleet: saving counters failed", "err", err)
	}
}

// republishAll queues every record for publishing.
func (s *Sync) republishAll() {
	err := s.st.Update(func(tx *store.Tx) error {
		var ids []string
		if err := tx.FleetKeys(prefRecord, func(k string) error { ids = append(ids, k[len(prefRecord):]); return nil }); err != nil {
			return err
		}
		for _, id := range ids {
			if err := tx.FleetPut(prefQueue+id, []byte(store.NewID())); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("fleet resync: queueing the records failed", "err", err)
	}
	s.kick(s.pubWake)
}

// collect compacts the records: expired tombstones go, and a record that
// is all expired tombstone is cleared from the broker and forgotten.
func (s *Sync) collect() {
	var ids []string
	now := s.opts.Now().UnixMilli()
	_ = s.st.View(func(tx *store.Tx) error {
		return tx.FleetScan(prefRecord, func(k string, v []byte) error {
			r, err := unmarshalRecord(v)
			if err != nil {
				return nil
			}
			c, garbage := Compact(r, now)
			if garbage || len(c.Removed) != len(r.Removed) {
				ids = append(ids, r.ID)
			}
			return nil
		})
	})
	if len(ids) > 0 {
		s.apply(context.Background(), ids, nil)
	}
	s.savePersisted()
}

func (s *Sync) warnOnce(key string, msg string, args ...any) {
	s.mu.Lock()
	seen := s.warned[key]
	if !seen {
		if len(s.warned) > 10000 {
			clear(s.warned)
		}
		s.warned[key] = true
	}
	s.mu.Unlock()
	if !seen {
		s.log.Warn(msg, args...)
	}
}

func (s *Sync) reportSkip(name, id string, by map[string]int) {
	var parts []string
	for bb, n := range by {
		parts = append(parts, fmt.Sprintf("%d of %s", n, bb))
	}
	slices.Sort(parts)
	how := "enroll them on this device, or set fleet.share_crops on the devices that enrolled them"
	if s.opts.ShareCrops {
		how = "enroll them on this device, or share crops on the devices that enrolled them"
	}
	s.m.skipped.Inc()
	s.log.Warn("fleet: a person's samples are of another backbone and cannot be used here",
		"person", name, "id", id, "samples", strings.Join(parts, ", "), "backbone", s.opts.Backbone, "fix", how)
}
