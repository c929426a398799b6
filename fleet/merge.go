package fleet

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Merge returns the join of two copies of the same person's record: a pure
// function, commutative, associative and idempotent (so any order and any
// duplication of copies gives the same state), which never changes its
// arguments. The rules (docs/fleet.md has examples):
//
//   - name and clusters: last writer wins, by HLC (device id breaks ties,
//     so two devices renaming at once converge on one name everywhere);
//   - the person's tombstone: the latest delete wins;
//   - samples and negatives: add-wins sets by sample id; a sample's
//     embeddings are merged by backbone (the latest per backbone);
//   - tombstones win over older adds: a sample with a removal tombstone
//     later than its add is dropped, and so is everything added before
//     the person's tombstone.
//
// a and b should be of the same person; a nil argument is the empty
// record. The result is normalised (Normalize).
func Merge(a, b *Record) *Record {
	switch {
	case a == nil && b == nil:
		return nil
	case a == nil:
		return Normalize(b)
	case b == nil:
		return Normalize(a)
	}
	out := &Record{V: RecordVersion, Fleet: a.Fleet, ID: a.ID}
	if b.Fleet > out.Fleet {
		out.Fleet = b.Fleet // only differs for a broken caller; stay deterministic
	}
	if b.ID > out.ID {
		out.ID = b.ID
	}
	out.Created = earliest(a.Created, b.Created)
	out.Name = a.Name
	if nameWins(b.Name, a.Name) {
		out.Name = b.Name
	}
	out.Deleted = laterTomb(a.Deleted, b.Deleted)
	out.Samples = unionSamples(a.Samples, b.Samples)
	out.Negatives = unionSamples(a.Negatives, b.Negatives)
	out.Removed = unionTombs(a.Removed, b.Removed)
	out.Clusters = unionClusters(a.Clusters, b.Clusters)
	return normalizeOwned(out)
}

// Normalize returns a copy of r in normal form: lists sorted by id (a
// sample's embeddings by backbone), samples and clusters dominated by a
// tombstone dropped, times in UTC milliseconds, HLC and Origin set to the
// latest timestamp in the record. Equal states have equal normal forms
// (and equal encodings).
func Normalize(r *Record) *Record {
	if r == nil {
		return nil
	}
	c := *r
	c.Samples = unionSamples(r.Samples, nil)
	c.Negatives = unionSamples(r.Negatives, nil)
	c.Removed = unionTombs(r.Removed, nil)
	if r.Deleted != nil {
		d := *r.Deleted
		c.Deleted = &d
	}
	c.Clusters = unionClusters(r.Clusters, nil)
	return normalizeOwned(&c)
}

// normalizeOwned normalises a record whose slices it may change.
func normalizeOwned(r *Record) *Record {
	r.V = RecordVersion
	r.Created = msUTC(r.Created)
	removed := make(map[string]HLC, len(r.Removed))
	for _, t := range r.Removed {
		removed[t.ID] = t.HLC
	}
	live := func(s Sample) bool {
		if t, ok := removed[s.ID]; ok && t.After(s.HLC) {
			return false
		}
		return r.Deleted == nil || s.HLC.After(r.Deleted.HLC)
	}
	r.Samples = slices.DeleteFunc(r.Samples, func(s Sample) bool { return !live(s) })
	r.Negatives = slices.DeleteFunc(r.Negatives, func(s Sample) bool { return !live(s) })
	if len(r.Samples) == 0 {
		r.Samples = nil
	}
	if len(r.Negatives) == 0 {
		r.Negatives = nil
	}
	if len(r.Removed) == 0 {
		r.Removed = nil
	}
	if r.Deleted != nil {
		r.Clusters = slices.DeleteFunc(r.Clusters, func(c Clusters) bool { return !c.HLC.After(r.Deleted.HLC) })
	}
	if len(r.Clusters) == 0 {
		r.Clusters = nil
	}
	// The version: the latest timestamp anywhere in the record (dropped
	// items included: their tombstones are later).
	h := r.Name.HLC
	if r.Deleted != nil {
		h = maxHLC(h, r.Deleted.HLC)
	}
	for _, list := range [][]Sample{r.Samples, r.Negatives} {
		for _, s := range list {
			h = maxHLC(h, s.HLC)
			for _, v := range s.Vecs {
				h = maxHLC(h, v.HLC)
			}
		}
	}
	for _, t := range r.Removed {
		h = maxHLC(h, t.HLC)
	}
	for _, c := range r.Clusters {
		h = maxHLC(h, c.HLC)
	}
	r.HLC, r.Origin = h, h.Device
	return r
}

// Compact drops the tombstones that expired at now (Unix ms) and reports
// whether the whole record is garbage: a deleted person whose tombstone
// expired and who has nothing newer. It is not part of Merge (which must
// not depend on the time); devices compact before publishing and when
// they collect garbage, and all of them use the expiry written in the
// tombstone, so they forget it at the same moment.
func Compact(r *Record, now int64) (out *Record, garbage bool) {
	c := Normalize(r)
	c.Removed = slices.DeleteFunc(c.Removed, func(t Tomb) bool { return t.Expires <= now })
	if len(c.Removed) == 0 {
		c.Removed = nil
	}
	if c.Deleted != nil && c.Deleted.Expires <= now && !c.Alive() {
		return c, true
	}
	return normalizeOwned(c), false
}

// Equal reports whether two records hold the same state.
func Equal(a, b *Record) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, err1 := marshalRecord(Normalize(a))
	y, err2 := marshalRecord(Normalize(b))
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func nameWins(a, b Name) bool {
	if c := a.HLC.Compare(b.HLC); c != 0 {
		return c > 0
	}
	if a.Value != b.Value {
		return a.Value > b.Value
	}
	return a.Prev.Compare(b.Prev) > 0
}

func laterTomb(a, b *Tomb) *Tomb {
	switch {
	case a == nil && b == nil:
		return nil
	case a == nil:
		t := *b
		return &t
	case b == nil || tombWins(*a, *b):
		t := *a
		return &t
	}
	t := *b
	return &t
}

func tombWins(a, b Tomb) bool {
	if c := a.HLC.Compare(b.HLC); c != 0 {
		return c > 0
	}
	return a.Expires > b.Expires
}

// unionClusters merges two cluster-set lists by backbone (the latest per
// backbone) into a new sorted list.
func unionClusters(a, b []Clusters) []Clusters {
	by := make(map[string]*Clusters, len(a)+len(b))
	for _, list := range [][]Clusters{a, b} {
		for i := range list {
			c := &list[i]
			if old, ok := by[c.Backbone]; ok {
				by[c.Backbone] = laterClusters(old, c)
			} else {
				by[c.Backbone] = c
			}
		}
	}
	out := make([]Clusters, 0, len(by))
	for _, c := range by {
		out = append(out, *cloneClusters(c))
	}
	slices.SortFunc(out, func(x, y Clusters) int { return strings.Compare(x.Backbone, y.Backbone) })
	return out
}

func laterClusters(a, b *Clusters) *Clusters {
	if c := a.HLC.Compare(b.HLC); c != 0 {
		if c > 0 {
			return a
		}
		return b
	}
	// Same timestamp, different content: only a broken or forged writer
	// does that; pick by the bytes so the choice is the same everywhere.
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	if bytes.Compare(x, y) >= 0 {
		return a
	}
	return b
}

// cloneClusters deep-copies c, with empty lists as nil (one canonical
// form).
func cloneClusters(c *Clusters) *Clusters {
	out := *c
	out.Items = nil
	for _, it := range c.Items {
		it.Centroid = slices.Clone(it.Centroid)
		it.Samples = slices.Clone(it.Samples)
		if len(it.Samples) == 0 {
			it.Samples = nil
		}
		out.Items = append(out.Items, it)
	}
	return &out
}

// unionSamples merges two sample lists by id into a new sorted list.
func unionSamples(a, b []Sample) []Sample {
	by := make(map[string]Sample, len(a)+len(b))
	for _, list := range [][]Sample{a, b} {
		for _, s := range list {
			if old, ok := by[s.ID]; ok {
				by[s.ID] = mergeSample(old, s)
			} else {
				by[s.ID] = mergeSample(s, s) // a normalised copy
			}
		}
	}
	out := make([]Sample, 0, len(by))
	for _, s := range by {
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y Sample) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// mergeSample joins two copies of one sample: the metadata of the greater
// copy (they are equal unless a writer is broken), the union of the
// crop flags, the latest embedding per backbone.
func mergeSample(a, b Sample) Sample {
	a.Created, b.Created = msUTC(a.Created), msUTC(b.Created)
	out := a
	if sampleMetaLess(a, b) {
		out = b
	}
	out.Crop = a.Crop || b.Crop
	vecs := make(map[string]Vec, len(a.Vecs)+len(b.Vecs))
	for _, list := range [][]Vec{a.Vecs, b.Vecs} {
		for _, v := range list {
			if old, ok := vecs[v.Backbone]; !ok || vecWins(v, old) {
				vecs[v.Backbone] = v
			}
		}
	}
	out.Vecs = make([]Vec, 0, len(vecs))
	for _, v := range vecs {
		v.Data = slices.Clone(v.Data)
		out.Vecs = append(out.Vecs, v)
	}
	slices.SortFunc(out.Vecs, func(x, y Vec) int { return strings.Compare(x.Backbone, y.Backbone) })
	return out
}

func sampleMetaLess(a, b Sample) bool {
	if c := a.HLC.Compare(b.HLC); c != 0 {
		return c < 0
	}
	if a.Quality != b.Quality {
		return a.Quality < b.Quality
	}
	if a.Source != b.Source {
		return a.Source < b.Source
	}
	return a.Created.Before(b.Created)
}

func vecWins(a, b Vec) bool {
	if c := a.HLC.Compare(b.HLC); c != 0 {
		return c > 0
	}
	return encodeVec(a.Data) > encodeVec(b.Data)
}

// unionTombs merges two tombstone lists by id (the latest per id).
func unionTombs(a, b []Tomb) []Tomb {
	by := make(map[string]Tomb, len(a)+len(b))
	for _, list := range [][]Tomb{a, b} {
		for _, t := range list {
			if old, ok := by[t.ID]; !ok || tombWins(t, old) {
				by[t.ID] = t
			}
		}
	}
	out := make([]Tomb, 0, len(by))
	for _, t := range by {
		out = append(out, t)
	}
	slices.SortFunc(out, func(x, y Tomb) int { return strings.Compare(x.ID, y.ID) })
	return out
}

func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}

func msUTC(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}
