package fleet

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edged-dev/edged/store"
)

// RecordVersion is the record format this build writes and reads (the
// "v" field). A record of another version is refused (ErrVersion), so an
// older edged never half-reads a newer format.
const RecordVersion = 1

// Record is one person as the fleet replicates it: the state-based CRDT
// published, retained, on edged/fleet/<name>/people/<id>. Every field that
// can change carries the HLC of its last write, so that any device can
// merge any two copies (Merge) and every device ends with the same state
// whatever order, and however many times, the copies arrive. The JSON
// schema is docs/schema/fleet/person.json.
type Record struct {
	// V is RecordVersion.
	V int `json:"v"`
	// Fleet is the fleet's name; it must match the topic's.
	Fleet string `json:"fleet"`
	// ID is the person id, the same on every device (a ULID).
	ID string `json:"id"`
	// HLC is the record's version: the latest timestamp in it. Origin is
	// the device that wrote that latest change (HLC.Device).
	HLC    HLC    `json:"hlc"`
	Origin string `json:"origin"`
	// Created is when the person was first enrolled (the earliest known).
	Created time.Time `json:"created"`
	// Name is the display name: last writer wins.
	Name Name `json:"name"`
	// Deleted is the person's tombstone (the latest delete), nil when the
	// person was never deleted. It removes every sample, negative and
	// cluster set written before it; the person is gone unless something
	// was added after it (a concurrent enrollment elsewhere).
	Deleted *Tomb `json:"deleted,omitempty"`
	// Samples are the enrolled faces (add-wins set, by sample id).
	Samples []Sample `json:"samples,omitempty"`
	// Negatives are "this face is not the person" samples (as Samples).
	Negatives []Sample `json:"negatives,omitempty"`
	// Removed are the tombstones of single samples and negatives (by id):
	// a removal wins over the add it follows.
	Removed []Tomb `json:"removed,omitempty"`
	// Clusters are the person's clusters as computed by the last writer of
	// each backbone (display data: every device re-clusters for matching);
	// one per backbone, last writer wins.
	Clusters []Clusters `json:"clusters,omitempty"`
}

// Name is a last-writer-wins register holding the display name. Prev is
// the timestamp of the name the writer replaced: a merge that drops a name
// newer than the winner's Prev drops a rename its writer never saw (a
// concurrent rename: counted as a resolved conflict).
type Name struct {
	Value string `json:"value"`
	HLC   HLC    `json:"hlc"`
	Prev  HLC    `json:"prev,omitzero"`
}

// Tomb is a tombstone: of the person (ID empty) or of one sample or
// negative (ID). It is kept until Expires (Unix milliseconds, set by the
// device that deleted); after that every device forgets it, and a device
// that was away longer could bring the deleted data back (docs/fleet.md,
// partitions).
type Tomb struct {
	ID      string `json:"id,omitempty"`
	HLC     HLC    `json:"hlc"`
	Expires int64  `json:"expires"`
}

// Sample is one enrolled face (or negative): its embeddings, one per
// backbone that computed it (the enrolling device's, plus any re-embedding
// of the shared crop by a device with another backbone).
type Sample struct {
	ID      string    `json:"id"`
	HLC     HLC       `json:"hlc"` // when it was added
	Quality float32   `json:"quality,omitempty"`
	Source  string    `json:"source,omitempty"`
	Created time.Time `json:"created"`
	// Crop is true when the face crop is shared on
	// edged/fleet/<name>/crops/<person>/<sample> (fleet.share_crops).
	Crop bool  `json:"crop,omitempty"`
	Vecs []Vec `json:"vecs"`
}

// Vec is one raw backbone embedding of a sample: base64 of little-endian
// float32 in JSON (4x smaller than numbers, and exact).
type Vec struct {
	Backbone string    `json:"backbone"`
	HLC      HLC       `json:"hlc"`
	Data     []float32 `json:"-"`
}

type vecJSON struct {
	Backbone string `json:"backbone"`
	HLC      HLC    `json:"hlc"`
	Data     string `json:"data"`
}

// MarshalJSON writes the vector as base64.
func (v Vec) MarshalJSON() ([]byte, error) {
	return json.Marshal(vecJSON{v.Backbone, v.HLC, encodeVec(v.Data)})
}

// UnmarshalJSON reads the base64 vector.
func (v *Vec) UnmarshalJSON(b []byte) error {
	var j vecJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d, err := decodeVec(j.Data)
	if err != nil {
		return err
	}
	*v = Vec{Backbone: j.Backbone, HLC: j.HLC, Data: d}
	return nil
}

// Clusters is a last-writer-wins register of the person's clusters, in
// the matching space of Backbone and Head ("" = no fine-tuned head).
type Clusters struct {
	Backbone string    `json:"backbone"`
	Head     string    `json:"head,omitempty"`
	HLC      HLC       `json:"hlc"`
	Items    []Cluster `json:"items"`
}

// Cluster is one mode of the person's samples.
type Cluster struct {
	Centroid []float32 `json:"-"`
	Spread   float32   `json:"spread"`
	Count    int       `json:"count"`
	Samples  []string  `json:"samples"`
}

type clusterJSON struct {
	Centroid string   `json:"centroid"`
	Spread   float32  `json:"spread"`
	Count    int      `json:"count"`
	Samples  []string `json:"samples"`
}

// MarshalJSON writes the centroid as base64.
func (c Cluster) MarshalJSON() ([]byte, error) {
	return json.Marshal(clusterJSON{encodeVec(c.Centroid), c.Spread, c.Count, c.Samples})
}

// UnmarshalJSON reads the base64 centroid.
func (c *Cluster) UnmarshalJSON(b []byte) error {
	var j clusterJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d, err := decodeVec(j.Centroid)
	if err != nil {
		return err
	}
	*c = Cluster{Centroid: d, Spread: j.Spread, Count: j.Count, Samples: j.Samples}
	return nil
}

// Vec returns the sample's embedding of backbone, if it has one.
func (s Sample) Vec(backbone string) (Vec, bool) {
	for _, v := range s.Vecs {
		if v.Backbone == backbone {
			return v, true
		}
	}
	return Vec{}, false
}

// Alive reports whether the person exists: never deleted, or something
// was added after the latest delete.
func (r *Record) Alive() bool {
	return r.Deleted == nil || len(r.Samples) > 0 || len(r.Negatives) > 0
}

// Limits bound what a device accepts from the broker and what it writes.
type Limits struct {
	// MaxRecordBytes is the largest payload accepted or published.
	MaxRecordBytes int
	// MaxSamples and MaxNegatives are the per-person caps a device keeps
	// to (the oldest are removed, with tombstones, beyond them); records
	// with more than twice as many are refused.
	MaxSamples, MaxNegatives int
	// MaxTombs caps the sample tombstones of a record.
	MaxTombs int
	// MaxDim caps an embedding's length, MaxVecs a sample's backbones.
	MaxDim, MaxVecs int
}

// Validate checks a decoded record against the format and the limits.
func (r *Record) Validate(l Limits) error {
	if r.V != RecordVersion {
		return fmt.Errorf("%w: v=%d, this edged reads %d", ErrVersion, r.V, RecordVersion)
	}
	if !validSegment(r.ID) {
		return fmt.Errorf("%w: person id %q", ErrInvalid, r.ID)
	}
	if err := store.ValidateName(r.Name.Value); err != nil {
		return fmt.Errorf("%w: name: %v", ErrInvalid, err)
	}
	if err := validHLC(r.Name.HLC, "name"); err != nil {
		return err
	}
	if !r.Name.Prev.IsZero() {
		if err := validHLC(r.Name.Prev, "name"); err != nil {
			return err
		}
	}
	if r.Deleted != nil {
		if err := validTomb(*r.Deleted, false); err != nil {
			return err
		}
	}
	switch {
	case len(r.Samples) > 2*l.MaxSamples:
		return fmt.Errorf("%w: %d samples (max %d)", ErrOversize, len(r.Samples), 2*l.MaxSamples)
	case len(r.Negatives) > 2*l.MaxNegatives:
		return fmt.Errorf("%w: %d negatives (max %d)", ErrOversize, len(r.Negatives), 2*l.MaxNegatives)
	case len(r.Removed) > l.MaxTombs:
		return fmt.Errorf("%w: %d tombstones (max %d)", ErrOversize, len(r.Removed), l.MaxTombs)
	}
	seen := map[string]bool{}
	for _, list := range [][]Sample{r.Samples, r.Negatives} {
		for _, s := range list {
			if !validSegment(s.ID) || seen[s.ID] {
				return fmt.Errorf("%w: sample id %q (invalid or repeated)", ErrInvalid, s.ID)
			}
			seen[s.ID] = true
			if err := validHLC(s.HLC, "sample "+s.ID); err != nil {
				return err
			}
			if !finite32(s.Quality) || len(s.Source) > 64 {
				return fmt.Errorf("%w: sample %s: quality or source", ErrInvalid, s.ID)
			}
			if len(s.Vecs) == 0 || len(s.Vecs) > l.MaxVecs {
				return fmt.Errorf("%w: sample %s has %d embeddings (want 1..%d)", ErrInvalid, s.ID, len(s.Vecs), l.MaxVecs)
			}
			bb := map[string]bool{}
			for _, v := range s.Vecs {
				if !validSegment(v.Backbone) || bb[v.Backbone] {
					return fmt.Errorf("%w: sample %s: backbone %q (invalid or repeated)", ErrInvalid, s.ID, v.Backbone)
				}
				bb[v.Backbone] = true
				if err := validHLC(v.HLC, "sample "+s.ID); err != nil {
					return err
				}
				if err := validVec(v.Data, l.MaxDim); err != nil {
					return fmt.Errorf("%w: sample %s: %v", ErrInvalid, s.ID, err)
				}
			}
		}
	}
	for _, t := range r.Removed {
		if err := validTomb(t, true); err != nil {
			return err
		}
	}
	if len(r.Clusters) > l.MaxVecs {
		return fmt.Errorf("%w: %d cluster sets", ErrOversize, len(r.Clusters))
	}
	cb := map[string]bool{}
	for _, c := range r.Clusters {
		if !validSegment(c.Backbone) || cb[c.Backbone] || len(c.Head) > 64 || len(c.Items) > l.MaxSamples {
			return fmt.Errorf("%w: clusters", ErrInvalid)
		}
		cb[c.Backbone] = true
		if err := validHLC(c.HLC, "clusters"); err != nil {
			return err
		}
		for _, it := range c.Items {
			if err := validVec(it.Centroid, l.MaxDim); err != nil || !finite32(it.Spread) || it.Count < 0 || len(it.Samples) > 2*l.MaxSamples {
				return fmt.Errorf("%w: cluster", ErrInvalid)
			}
		}
	}
	return nil
}

func validTomb(t Tomb, withID bool) error {
	if withID != (t.ID != "") || (withID && !validSegment(t.ID)) || t.Expires < 0 {
		return fmt.Errorf("%w: tombstone %q", ErrInvalid, t.ID)
	}
	return validHLC(t.HLC, "tombstone")
}

func validHLC(h HLC, what string) error {
	if h.Wall <= 0 || !validSegment(h.Device) {
		return fmt.Errorf("%w: %s: hlc %q", ErrInvalid, what, h)
	}
	return nil
}

func validVec(v []float32, maxDim int) error {
	if len(v) == 0 || len(v) > maxDim {
		return fmt.Errorf("embedding of %d values (want 1..%d)", len(v), maxDim)
	}
	for _, x := range v {
		if !finite32(x) {
			return fmt.Errorf("embedding value %v", x)
		}
	}
	return nil
}

func finite32(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }

// validSegment reports whether s can be one MQTT topic level and a store
// id: 1-64 bytes of UTF-8 without '/', '+', '#', control characters or a
// leading '$'.
func validSegment(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '$' || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '/' || r == '+' || r == '#' || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ValidName reports whether name can be a fleet or device name: a topic
// level, letters, digits, '-', '_' and '.', at most 64 bytes.
func ValidName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) < 0
}

// Vectors travel as base64 little-endian float32, as in the store (one
// encoding: store.EncodeVector).

func encodeVec(v []float32) string { return store.EncodeVector(v) }

func decodeVec(s string) ([]float32, error) {
	v, err := store.DecodeVector(s)
	if err != nil {
		return nil, fmt.Errorf("%w: bad vector encoding", ErrCorrupt)
	}
	return v, nil
}

// marshalRecord is the canonical encoding of a normalised record: equal
// states give equal bytes.
func marshalRecord(r *Record) ([]byte, error) { return json.Marshal(r) }

// unmarshalRecord decodes a record (ErrCorrupt when it is not one).
func unmarshalRecord(b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return &r, nil
}
