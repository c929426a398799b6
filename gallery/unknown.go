package gallery

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// UnknownOptions configure the online clustering of unknown faces.
type UnknownOptions struct {
	// Space gives the default Radius (the backbone's distances). Default
	// DlibSpace, whose numbers the comment below uses.
	Space Space `yaml:"-"`
	// Radius: an unknown appearance joins the nearest unknown identity whose
	// centroid is at most this far (L2-normalised raw embeddings); else it
	// starts a new one. Default 0.36: the same-person distance of a mean
	// of faces is about 0.25-0.3, and two strangers are rarely this near.
	Radius float64 `yaml:"radius"`
	// MinQuality: only faces at least this good are clustered. Default 0.5.
	MinQuality float32 `yaml:"min_quality"`
	// Keep is how many best faces an identity keeps for a later enrollment.
	// Default 10.
	Keep int `yaml:"keep"`
	// Max bounds the identities kept: a new one beyond it evicts the one
	// seen least recently (with its faces). Default DefaultUnknownMax;
	// negative: no bound.
	Max int `yaml:"max"`
	// MaxAge forgets an identity not seen for this long (Expire, and at
	// Load). Default DefaultUnknownMaxAge; negative: never.
	MaxAge time.Duration `yaml:"max_age"`
}

// Unknown identity bounds (UnknownOptions.Max, MaxAge). 1000 identities
// of 10 faces are about 5 MiB of vectors in memory and in the store, and
// more strangers than a household or a shop door sees in a month; an
// identity nobody saw for 30 days is more likely noise than someone to
// name, and fine-tuning should not learn from it.
const (
	DefaultUnknownMax    = 1000
	DefaultUnknownMaxAge = 30 * 24 * time.Hour
)

func (o *UnknownOptions) fill() {
	o.Space = o.Space.orDefault()
	if o.Radius <= 0 {
		o.Radius = o.Space.UnknownRadius
	}
	if o.MinQuality <= 0 {
		o.MinQuality = 0.5
	}
	if o.Keep <= 0 {
		o.Keep = 10
	}
	if o.Max == 0 {
		o.Max = DefaultUnknownMax
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultUnknownMaxAge
	}
}

// UnknownFace is one face of an unknown person.
type UnknownFace struct {
	Embedding []float32 // raw
	Quality   float32
	Time      time.Time
	Camera    string
}

// UnknownIdentity is a persistent "unknown-N": faces nobody enrolled that
// look like the same person.
type UnknownIdentity struct {
	ID        string
	Number    uint64
	Count     int // appearances (tracks) assigned
	FirstSeen time.Time
	LastSeen  time.Time
	Cameras   []string
	// Centroid is the mean of the L2-normalised raw embeddings of every
	// face assigned so far (not normalised: its length shrinks as the faces
	// disagree).
	Centroid []float32
	Faces    []UnknownFace // the best Keep faces, best first
	// sum is the running sum of the normalised faces; n their number.
	sum []float64
	n   int
}

// Unknowns clusters unknown faces online into identities. The clustering is
// in the raw (normalised) embedding space, so it survives a head change.
// Safe for concurrent use.
type Unknowns struct {
	mu   sync.Mutex
	opts UnknownOptions
	ids  []*UnknownIdentity
}

// NewUnknowns returns an empty clusterer.
func NewUnknowns(opts UnknownOptions) *Unknowns {
	opts.fill()
	return &Unknowns{opts: opts}
}

// Options returns the effective options.
func (u *Unknowns) Options() UnknownOptions { return u.opts }

// Load replaces the identities (from the store). Centroids are taken as
// the mean of every face ever assigned, counted as Count faces. Identities
// past MaxAge now are left out, and beyond Max the least recently seen
// (Expire's rules); it returns those left out, for the store to delete.
func (u *Unknowns) Load(ids []UnknownIdentity) (leftOut []UnknownIdentity) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ids = u.ids[:0]
	for _, id := range ids {
		c := id
		c.Faces = append([]UnknownFace(nil), id.Faces...)
		c.n = max(1, id.Count)
		c.sum = make([]float64, len(id.Centroid))
		for i, x := range id.Centroid {
			c.sum[i] = float64(x) * float64(c.n)
		}
		u.ids = append(u.ids, &c)
	}
	return u.expireLocked(time.Now())
}

// Expire forgets the identities not seen for MaxAge before now, then, while
// there are more than Max, the least recently seen ones, and returns them
// (the store deletes them with their faces).
func (u *Unknowns) Expire(now time.Time) []UnknownIdentity {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.expireLocked(now)
}

func (u *Unknowns) expireLocked(now time.Time) []UnknownIdentity {
	var gone []UnknownIdentity
	if u.opts.MaxAge > 0 {
		keep := u.ids[:0]
		for _, id := range u.ids {
			if seen := lastSeen(id); !seen.IsZero() && now.Sub(seen) > u.opts.MaxAge { // no time: never expires
				gone = append(gone, id.clone())
				continue
			}
			keep = append(keep, id)
		}
		clear(u.ids[len(keep):])
		u.ids = keep
	}
	if u.opts.Max > 0 && len(u.ids) > u.opts.Max {
		// Least recently seen first; the newest stay.
		sort.SliceStable(u.ids, func(i, j int) bool { return lastSeen(u.ids[i]).Before(lastSeen(u.ids[j])) })
		n := len(u.ids) - u.opts.Max
		for _, id := range u.ids[:n] {
			gone = append(gone, id.clone())
		}
		u.ids = append(u.ids[:0], u.ids[n:]...)
	}
	return gone
}

// lastSeen is when an identity was last seen (FirstSeen before any face
// was assigned).
func lastSeen(id *UnknownIdentity) time.Time {
	if id.LastSeen.IsZero() {
		return id.FirstSeen
	}
	return id.LastSeen
}

// Len is the number of identities.
func (u *Unknowns) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.ids)
}

// Match returns the identity the faces (one appearance) would join and its
// distance, without changing anything ("" when none is within Radius).
func (u *Unknowns) Match(faces []UnknownFace) (string, float64) {
	good := u.good(faces)
	if len(good) == 0 {
		return "", 0
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	id, d := u.nearest(meanOfFaces(good))
	if id == nil || d > u.opts.Radius {
		return "", d
	}
	return id.ID, d
}

func (u *Unknowns) good(faces []UnknownFace) []UnknownFace {
	var out []UnknownFace
	for _, f := range faces {
		if f.Quality >= u.opts.MinQuality && normalized(f.Embedding) != nil {
			out = append(out, f)
		}
	}
	return out
}

func meanOfFaces(fs []UnknownFace) []float32 {
	units := make([][]float32, len(fs))
	for i, f := range fs {
		units[i] = normalized(f.Embedding)
	}
	return meanUnit(units, nil)
}

func (u *Unknowns) nearest(q []float32) (*UnknownIdentity, float64) {
	var best *UnknownIdentity
	bd := 0.0
	for _, id := range u.ids {
		if len(id.Centroid) != len(q) {
			continue
		}
		if d := dist(q, normalized(id.Centroid)); best == nil || d < bd {
			best, bd = id, d
		}
	}
	return best, bd
}

// Observe assigns one appearance of an unknown person (a track's good
// faces) to the nearest identity within Radius, or creates one numbered by
// newNumber (the store's counter). It returns a copy of the identity and
// whether it is new; ok is false when no face was good enough (nothing
// changes).
func (u *Unknowns) Observe(faces []UnknownFace, newNumber func() (uint64, error)) (id UnknownIdentity, created, ok bool, err error) {
	good := u.good(faces)
	if len(good) == 0 {
		return UnknownIdentity{}, false, false, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	q := meanOfFaces(good)
	target, d := u.nearest(q)
	if target == nil || d > u.opts.Radius {
		n, err := newNumber()
		if err != nil {
			return UnknownIdentity{}, false, false, fmt.Errorf("new unknown identity: %w", err)
		}
		target = &UnknownIdentity{ID: fmt.Sprintf("unknown-%d", n), Number: n, FirstSeen: good[0].Time, sum: make([]float64, len(q))}
		u.ids = append(u.ids, target)
		created = true
	}
	target.Count++
	for _, f := range good {
		for i, x := range normalized(f.Embedding) {
			target.sum[i] += float64(x)
		}
		target.n++
		if f.Time.Before(target.FirstSeen) || target.FirstSeen.IsZero() {
			target.FirstSeen = f.Time
		}
		if f.Time.After(target.LastSeen) {
			target.LastSeen = f.Time
		}
		if f.Camera != "" && !slices.Contains(target.Cameras, f.Camera) {
			target.Cameras = append(target.Cameras, f.Camera)
		}
		target.Faces = append(target.Faces, f)
	}
	sort.SliceStable(target.Faces, func(i, j int) bool { return target.Faces[i].Quality > target.Faces[j].Quality })
	if len(target.Faces) > u.opts.Keep {
		target.Faces = target.Faces[:u.opts.Keep]
	}
	target.Centroid = make([]float32, len(target.sum))
	for i, x := range target.sum {
		target.Centroid[i] = float32(x / float64(target.n))
	}
	return target.clone(), created, true, nil
}

func (id *UnknownIdentity) clone() UnknownIdentity {
	c := *id
	c.Cameras = append([]string(nil), id.Cameras...)
	c.Centroid = append([]float32(nil), id.Centroid...)
	c.Faces = append([]UnknownFace(nil), id.Faces...)
	c.sum, c.n = nil, 0
	return c
}

// Remove forgets an identity (enrolled under a name, or dismissed).
func (u *Unknowns) Remove(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, x := range u.ids {
		if x.ID == id {
			u.ids = append(u.ids[:i], u.ids[i+1:]...)
			return true
		}
	}
	return false
}

// List returns copies of the identities, oldest first.
func (u *Unknowns) List() []UnknownIdentity {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]UnknownIdentity, len(u.ids))
	for i, id := range u.ids {
		out[i] = id.clone()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}
