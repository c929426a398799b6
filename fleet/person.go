package fleet

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edged-dev/edged/store"
)

// outcome is what synchronising one person did.
type outcome struct {
	change   *Change  // what the fleet changed in the local store
	publish  bool     // the record must be (re)published
	conflict bool     // the incoming copy and the local one each had news
	remote   bool     // the incoming copy had news for this device
	reembed  []string // samples whose shared crop is here, to re-embed
	cropsPut []string // this device's samples whose crops to publish
	cropsDel []string // samples whose shared crops to clear
	skipped  map[string]int
	garbage  bool // the record expired: clear its topic
	report   bool // skipped is news: log it
	name     string
}

// syncPerson is the one step every path goes through (a local change, a
// record from the broker, a reconciliation, a re-embedding), inside one
// store transaction:
//
//  1. fold: what the store holds that differs from what the fleet last
//     wrote (applied) is a local change, stamped with a new HLC and merged
//     into the person's record;
//  2. merge the incoming copy, if any;
//  3. keep the caps (the oldest samples beyond MaxSamples get tombstones);
//  4. project the record onto the store: create, rename, delete, add and
//     remove samples with the same ids, only vectors of this backbone;
//  5. save the record, the applied state, the publish queue entry.
//
// Local truth is folded before anything from outside is applied, so a
// local change is never overwritten by an older remote one, and it is
// never lost: it is in the record (and queued) in the transaction that
// applies the remote one.
func (s *Sync) syncPerson(tx *store.Tx, id string, in *Record) (outcome, error) {
	var out outcome
	rp, err := loadRecord(tx, id)
	if err != nil {
		return out, err
	}
	ap, err := loadApplied(tx, id)
	if err != nil {
		return out, err
	}
	cur, err := readLocal(tx, id)
	if err != nil {
		return out, err
	}
	// A conflict is news from another device meeting a local change the
	// broker has not seen yet (folded now, or still queued).
	pendingLocal := false
	if delta := s.localDelta(rp, ap, cur, &out); delta != nil {
		rp = Merge(rp, delta)
		out.publish = true
		pendingLocal = true
	} else if in != nil {
		q, err := tx.FleetGet(prefQueue + id)
		if err != nil {
			return out, err
		}
		pendingLocal = q != nil
	}
	now := s.opts.Now().UnixMilli()
	if in != nil {
		in, _ = Compact(in, now)
		merged := Merge(rp, in)
		if rp != nil {
			cmp, _ := Compact(rp, now)
			out.remote = !Equal(merged, cmp)
			out.conflict = out.remote && pendingLocal || renameConflict(rp.Name, in.Name)
		} else {
			out.remote = true
		}
		if !Equal(merged, in) {
			out.publish = true // the broker's copy lacks what this device knows
		}
		rp = merged
	}
	if rp == nil {
		return out, nil // nothing anywhere (an id that never was)
	}
	rp, out.garbage = Compact(rp, now)
	if ev := s.evict(rp); ev != nil {
		rp = Merge(rp, ev)
		out.publish = true
	}
	out.name = rp.Name.Value
	newAp, err := s.project(tx, rp, ap, cur, &out)
	if err != nil {
		return out, err
	}
	if err := saveRecord(tx, rp); err != nil {
		return out, err
	}
	if newAp != nil {
		err = putJSON(tx, prefApplied+id, newAp)
	} else {
		err = tx.FleetDelete(prefApplied + id)
	}
	if err != nil {
		return out, err
	}
	if out.garbage {
		out.publish = true // the publisher clears the topic and forgets the record
	}
	if out.publish {
		if err := tx.FleetPut(prefQueue+id, []byte(store.NewID())); err != nil {
			return out, err
		}
	}
	for _, sid := range out.cropsPut {
		if err := tx.FleetPut(prefCropQ+id+"/"+sid, []byte("p")); err != nil {
			return out, err
		}
	}
	for _, sid := range out.cropsDel {
		if err := tx.FleetPut(prefCropQ+id+"/"+sid, []byte("d")); err != nil {
			return out, err
		}
		if err := tx.FleetDelete(prefCrop + id + "/" + sid); err != nil {
			return out, err
		}
	}
	return out, nil
}

// localDelta returns the local changes since the fleet last wrote the
// person (nil: none), as a record stamped with one new HLC.
func (s *Sync) localDelta(rp *Record, ap *applied, cur local, out *outcome) *Record {
	if !cur.exists && ap == nil {
		return nil
	}
	var now HLC
	stamp := func() HLC {
		if now.IsZero() {
			now = s.clock.Now()
		}
		return now
	}
	expires := func() int64 { return stamp().Wall + s.opts.TombstoneTTL.Milliseconds() }
	id := cur.person.ID
	if id == "" && rp != nil {
		id = rp.ID
	}
	d := &Record{V: RecordVersion, Fleet: s.opts.Name, ID: id}
	if rp != nil {
		d.ID = rp.ID
		d.Name = rp.Name // unchanged unless below; Merge keeps the later one
	}
	changed := false
	if !cur.exists {
		if rp == nil {
			return nil
		}
		// Deleted here: a tombstone, and the shared crops go.
		d.Deleted = &Tomb{HLC: stamp(), Expires: expires()}
		for _, list := range [][]Sample{rp.Samples, rp.Negatives} {
			for _, x := range list {
				if x.Crop {
					out.cropsDel = append(out.cropsDel, x.ID)
				}
			}
		}
		return d
	}
	d.ID = cur.person.ID
	d.Created = cur.person.Created
	if ap == nil || cur.person.Name != ap.Name {
		if rp == nil || rp.Name.Value != cur.person.Name || !rp.Alive() {
			d.Name = Name{Value: cur.person.Name, HLC: stamp()}
			if rp != nil {
				d.Name.Prev = rp.Name.HLC
			}
			changed = true
		}
	}
	if ap == nil {
		ap = &applied{}
	}
	var recSamples, recNegs map[string]Sample
	removed := map[string]bool{}
	if rp != nil {
		recSamples, recNegs = byID(rp.Samples), byID(rp.Negatives)
		for _, t := range rp.Removed {
			removed[t.ID] = true
		}
	}
	add := func(list *[]Sample, rec map[string]Sample, prev map[string]string, sid, bb string, emb []float32, q float32, src string, hasCrop bool, created time.Time) {
		if p, ok := prev[sid]; ok && p == bb {
			return
		}
		crop := s.opts.ShareCrops && hasCrop
		if rs, ok := rec[sid]; ok {
			if v, ok := rs.Vec(bb); ok && slices.Equal(v.Data, emb) {
				return
			}
			// Known to the fleet: this device computed its own backbone's
			// vector (a re-embedding); add it to the sample.
			x := rs
			x.Vecs = []Vec{{Backbone: bb, HLC: stamp(), Data: emb}}
			x.Crop = rs.Crop || crop
			*list = append(*list, x)
			changed = true
			return
		}
		if removed[sid] {
			return // removed in the fleet meanwhile: project deletes it
		}
		*list = append(*list, Sample{ID: sid, HLC: stamp(), Quality: q, Source: src, Created: created,
			Crop: crop, Vecs: []Vec{{Backbone: bb, HLC: stamp(), Data: emb}}})
		if crop {
			out.cropsPut = append(out.cropsPut, sid)
		}
		changed = true
	}
	have := map[string]bool{}
	for _, x := range cur.samples {
		have[x.ID] = true
		add(&d.Samples, recSamples, ap.Samples, x.ID, x.BackboneID(), x.Embedding, x.Quality, x.Source, x.HasCrop, x.Created)
	}
	for _, x := range cur.negatives {
		have[x.ID] = true
		add(&d.Negatives, recNegs, ap.Negatives, x.ID, x.BackboneID(), x.Embedding, 0, x.Source, x.HasCrop, x.Created)
	}
	for _, prev := range []map[string]string{ap.Samples, ap.Negatives} {
		for sid := range prev {
			if !have[sid] {
				d.Removed = append(d.Removed, Tomb{ID: sid, HLC: stamp(), Expires: expires()})
				if rs, ok := recSamples[sid]; ok && rs.Crop {
					out.cropsDel = append(out.cropsDel, sid)
				} else if rs, ok := recNegs[sid]; ok && rs.Crop {
					out.cropsDel = append(out.cropsDel, sid)
				}
				changed = true
			}
		}
	}
	if c := cur.clusters; len(c.Clusters) > 0 && !c.Updated.Equal(ap.Clusters) {
		cs := Clusters{Backbone: s.opts.Backbone, Head: c.Head, HLC: stamp()}
		for _, it := range c.Clusters {
			cs.Items = append(cs.Items, Cluster{Centroid: it.Centroid, Spread: it.Spread, Count: it.Count, Samples: it.Samples})
		}
		d.Clusters = []Clusters{cs}
		changed = true
	}
	if !changed {
		return nil
	}
	if d.Name.HLC.IsZero() {
		// A record needs a name; the local one, at the oldest time, loses
		// to any name the fleet already has.
		d.Name = Name{Value: cur.person.Name, HLC: HLC{Wall: 1, Device: s.opts.Device}}
	}
	return d
}

// renameConflict reports whether merging two name registers drops a
// rename the winner's writer had not seen.
func renameConflict(a, b Name) bool {
	if a.HLC == b.HLC || a.Value == b.Value {
		return false
	}
	win, lose := a, b
	if nameWins(b, a) {
		win, lose = b, a
	}
	return lose.HLC.After(win.Prev)
}

func byID(list []Sample) map[string]Sample {
	m := make(map[string]Sample, len(list))
	for _, x := range list {
		m[x.ID] = x
	}
	return m
}

// evict returns tombstones for the oldest samples (negatives) beyond the
// caps, stamped now; nil when the record is within them. Every device
// evicts the same ones from the same state.
func (s *Sync) evict(r *Record) *Record {
	var tombs []Tomb
	var now HLC
	for _, c := range []struct {
		list []Sample
		max  int
	}{{r.Samples, s.opts.MaxSamples}, {r.Negatives, s.opts.MaxNegatives}} {
		if len(c.list) <= c.max {
			continue
		}
		if now.IsZero() {
			now = s.clock.Now()
		}
		old := slices.Clone(c.list)
		slices.SortFunc(old, func(a, b Sample) int {
			if x := a.HLC.Compare(b.HLC); x != 0 {
				return x
			}
			return strings.Compare(a.ID, b.ID)
		})
		for _, x := range old[:len(old)-c.max] {
			tombs = append(tombs, Tomb{ID: x.ID, HLC: maxHLC(now, x.HLC), Expires: now.Wall + s.opts.TombstoneTTL.Milliseconds()})
		}
	}
	if tombs == nil {
		return nil
	}
	return &Record{V: RecordVersion, Fleet: r.Fleet, ID: r.ID, Name: r.Name, Removed: tombs}
}

// project makes the store hold what the record says, for this device's
// backbone, and returns the new applied state (nil: the person is not in
// the store).
func (s *Sync) project(tx *store.Tx, rp *Record, ap *applied, cur local, out *outcome) (*applied, error) {
	bb := s.opts.Backbone
	ch := Change{PersonID: rp.ID, Origin: rp.Origin, Version: rp.HLC.String(), Name: cur.person.Name}
	if !rp.Alive() {
		if cur.exists {
			if err := tx.DeletePerson(rp.ID); err != nil {
				return nil, err
			}
			ch.Kind = ChangeDeleted
			ch.SamplesRemoved = len(cur.samples) + len(cur.negatives)
			out.change = &ch
		}
		return nil, nil
	}
	usable := func(list []Sample) int {
		n := 0
		for _, x := range list {
			if _, ok := x.Vec(bb); ok {
				n++
			}
		}
		return n
	}
	if !cur.exists && usable(rp.Samples) == 0 {
		// Nothing this device can match with yet: do not list a person who
		// cannot be recognised here. Shared crops are re-embedded (the
		// person is created then); the rest is reported.
		if s.opts.ShareCrops && s.opts.Reembed != nil {
			crops := s.cropsHere(tx, rp.ID)
			for _, list := range [][]Sample{rp.Samples, rp.Negatives} {
				for _, x := range list {
					if _, ok := x.Vec(bb); !ok && x.Crop && crops[x.ID] {
						out.reembed = append(out.reembed, x.ID)
					}
				}
			}
		}
		s.skipped(tx, rp, out)
		return nil, nil
	}
	out.skipped = map[string]int{}
	localName, err := s.localName(tx, rp)
	if err != nil {
		return nil, err
	}
	// The local clusters were folded into the record already: seen.
	na := &applied{Name: localName, Samples: map[string]string{}, Negatives: map[string]string{},
		Clusters: cur.clusters.Updated}
	switch {
	case !cur.exists:
		p := store.Person{ID: rp.ID, Name: localName, Created: rp.Created}
		if err := tx.PutPerson(&p); err != nil {
			return nil, fmt.Errorf("create %s (%q): %w", rp.ID, localName, err)
		}
		ch.Kind, ch.Name = ChangeCreated, localName
	case cur.person.Name != localName:
		p := cur.person
		p.Name = localName
		if err := tx.PutPerson(&p); err != nil {
			return nil, fmt.Errorf("rename %s to %q: %w", rp.ID, localName, err)
		}
		ch.Kind, ch.OldName, ch.Name = ChangeRenamed, cur.person.Name, localName
	}
	// Samples and negatives.
	type localItem struct {
		backbone string
		emb      []float32
	}
	localS := map[string]localItem{}
	for _, x := range cur.samples {
		localS[x.ID] = localItem{x.BackboneID(), x.Embedding}
	}
	localN := map[string]localItem{}
	for _, x := range cur.negatives {
		localN[x.ID] = localItem{x.BackboneID(), x.Embedding}
	}
	var crops map[string]bool
	for ni, list := range [][]Sample{rp.Samples, rp.Negatives} {
		neg := ni == 1
		have, record := localS, na.Samples
		if neg {
			have, record = localN, na.Negatives
		}
		for _, rs := range list {
			v, ok := rs.Vec(bb)
			li, haveIt := have[rs.ID]
			switch {
			case !ok && haveIt:
				record[rs.ID] = li.backbone // this device's own older vector
			case !ok:
				if rs.Crop && s.opts.ShareCrops && s.opts.Reembed != nil {
					if crops == nil {
						crops = s.cropsHere(tx, rp.ID)
					}
					if crops[rs.ID] {
						out.reembed = append(out.reembed, rs.ID)
					}
					continue // waits for its crop or its re-embedding
				}
				for _, x := range rs.Vecs {
					out.skipped[x.Backbone]++
				}
				ch.SamplesSkipped++
			case haveIt:
				if li.backbone != bb || !slices.Equal(li.emb, v.Data) {
					var err error
					if neg {
						err = tx.SetNegativeEmbedding(rp.ID, rs.ID, bb, v.Data)
					} else {
						err = tx.SetSampleEmbedding(rp.ID, rs.ID, bb, v.Data)
					}
					if err != nil {
						return nil, err
					}
					if ch.Kind == "" {
						ch.Kind = ChangeUpdated
					}
				}
				record[rs.ID] = bb
			default:
				var err error
				if neg {
					n := store.Negative{ID: rs.ID, PersonID: rp.ID, Embedding: v.Data, Backbone: bb,
						Source: rs.Source, Ref: "fleet:" + rs.HLC.Device, Created: rs.Created}
					err = tx.AddNegative(&n)
				} else {
					x := store.Sample{ID: rs.ID, PersonID: rp.ID, Embedding: v.Data, Backbone: bb, Quality: rs.Quality,
						Source: rs.Source, Ref: "fleet:" + rs.HLC.Device, Created: rs.Created}
					err = tx.AddSample(&x, nil)
				}
				if err != nil {
					return nil, fmt.Errorf("add sample %s of %s: %w", rs.ID, rp.ID, err)
				}
				record[rs.ID] = bb
				ch.SamplesAdded++
			}
		}
		// What the store has and the record no longer does was removed in
		// the fleet (or evicted). Local items the fleet never saw cannot
		// be here: they were folded into the record first.
		for sid := range have {
			if _, kept := record[sid]; kept || slices.Contains(out.reembed, sid) {
				continue
			}
			if _, inRecord := findSample(list, sid); inRecord {
				continue // another backbone's, waiting: keep
			}
			var err error
			if neg {
				err = tx.DeleteNegative(rp.ID, sid)
			} else {
				err = tx.DeleteSample(rp.ID, sid)
			}
			if err != nil && !errors.Is(err, store.ErrSampleNotFound) {
				return nil, err
			}
			ch.SamplesRemoved++
		}
	}
	if ch.Kind == "" && (ch.SamplesAdded > 0 || ch.SamplesRemoved > 0) {
		ch.Kind = ChangeUpdated
	}
	// Clusters: display data; this backbone's, when another device wrote
	// newer ones.
	for _, c := range rp.Clusters {
		if c.Backbone != bb || c.HLC.Device == s.opts.Device || !c.HLC.Time().After(cur.clusters.Updated) {
			continue
		}
		sc := store.Clusters{Head: c.Head, Updated: c.HLC.Time()}
		for _, it := range c.Items {
			sc.Clusters = append(sc.Clusters, store.Cluster{Centroid: it.Centroid, Spread: it.Spread, Count: it.Count, Samples: it.Samples})
		}
		if err := tx.PutClusters(rp.ID, sc); err != nil {
			return nil, err
		}
		na.Clusters = sc.Updated
	}
	s.skipped(tx, rp, out)
	if ch.Kind != "" {
		ch.Samples = len(na.Samples) + len(na.Negatives)
		out.change = &ch
	}
	return na, nil
}

func findSample(list []Sample, id string) (Sample, bool) {
	for _, x := range list {
		if x.ID == id {
			return x, true
		}
	}
	return Sample{}, false
}

// cropsHere lists the person's shared crops received and kept.
func (s *Sync) cropsHere(tx *store.Tx, person string) map[string]bool {
	m := map[string]bool{}
	_ = tx.FleetKeys(prefCrop+person+"/", func(k string) error {
		m[k[len(prefCrop+person+"/"):]] = true
		return nil
	})
	return m
}

// skipped reports, once per person and set of backbones, the samples this
// device cannot use.
func (s *Sync) skipped(tx *store.Tx, rp *Record, out *outcome) {
	if out.skipped == nil {
		out.skipped = map[string]int{}
		for _, list := range [][]Sample{rp.Samples, rp.Negatives} {
			for _, x := range list {
				if _, ok := x.Vec(s.opts.Backbone); !ok && !(x.Crop && s.opts.ShareCrops && s.opts.Reembed != nil) {
					for _, v := range x.Vecs {
						out.skipped[v.Backbone]++
					}
				}
			}
		}
	}
	var bbs []string
	for bb := range out.skipped {
		bbs = append(bbs, bb)
	}
	slices.Sort(bbs)
	key := strings.Join(bbs, ",")
	prev, _ := tx.FleetGet(prefSkip + rp.ID)
	if string(prev) == key {
		return
	}
	if key == "" {
		_ = tx.FleetDelete(prefSkip + rp.ID)
		return
	}
	_ = tx.FleetPut(prefSkip+rp.ID, []byte(key))
	out.report = true // logged and counted after the commit
}

// localName is the name the person gets in this device's store: the
// fleet's, unless another person already has it here (two people enrolled
// under one name on two devices). Then the person with the smaller id
// keeps it and the other gets "<name> (<last 6 characters of the id>)":
// the same choice on every device.
func (s *Sync) localName(tx *store.Tx, rp *Record) (string, error) {
	return s.localNameDepth(tx, rp, 0)
}

func (s *Sync) localNameDepth(tx *store.Tx, rp *Record, depth int) (string, error) {
	want := strings.TrimSpace(rp.Name.Value)
	owner, err := tx.PersonByName(want)
	switch {
	case errors.Is(err, store.ErrPersonNotFound):
		return want, nil
	case err != nil:
		return "", err
	case owner.ID == rp.ID:
		return want, nil
	}
	if depth == 0 && !s.nested {
		// Bring the owner up to date first: its local changes are folded
		// into its record (so moving it aside below is not mistaken for a
		// local rename), and a rename from the fleet may free the name.
		// One level only (two people swapping names would recurse).
		s.nested = true
		_, err := s.syncPerson(tx, owner.ID, nil)
		s.nested = false
		if err != nil {
			return "", err
		}
		return s.localNameDepth(tx, rp, 1)
	}
	if rp.ID > owner.ID {
		return s.freeName(tx, want, rp.ID)
	}
	// This person keeps the name: the owner moves aside (and its applied
	// name follows, so the move is not taken for a local rename).
	moved, err := s.freeName(tx, want, owner.ID)
	if err != nil {
		return "", err
	}
	owner.Name = moved
	if err := tx.PutPerson(&owner); err != nil {
		return "", err
	}
	if oa, err := loadApplied(tx, owner.ID); err == nil && oa != nil {
		oa.Name = moved
		if err := putJSON(tx, prefApplied+owner.ID, oa); err != nil {
			return "", err
		}
	}
	s.log.Warn("two people of the fleet share a name; this device lists one with a suffix",
		"name", want, "kept_by", rp.ID, "renamed", owner.ID, "as", moved)
	return want, nil
}

// freeName is name with a suffix from id, unused in the store.
func (s *Sync) freeName(tx *store.Tx, name, id string) (string, error) {
	for _, suffix := range []string{id[max(0, len(id)-6):], id} {
		base := name
		for len(base)+len(suffix)+3 > store.MaxNameLen {
			_, size := utf8.DecodeLastRuneInString(base)
			base = base[:len(base)-size]
		}
		cand := base + " (" + suffix + ")"
		p, err := tx.PersonByName(cand)
		if errors.Is(err, store.ErrPersonNotFound) || err == nil && p.ID == id {
			return cand, nil
		} else if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("no free name for %s (%q)", id, name)
}
