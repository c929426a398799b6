package gallery

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Projector maps a raw backbone embedding into the matching space (package
// head's fine-tuned projection implements it). The gallery L2-normalises
// its output. A nil Projector is the identity.
type Projector interface {
	Project(raw []float32) []float32
}

// Sample is one face of a person: its id and RAW backbone embedding.
type Sample struct {
	ID        string
	Embedding []float32
	Quality   float32
}

// Person is everything the gallery needs about one person.
type Person struct {
	ID, Name string
	Samples  []Sample
	// Negatives are faces the user said are NOT this person.
	Negatives []Sample
	// Experience are in-domain faces of the person the device labelled
	// itself (frames of tracks recognised with high confidence: night,
	// far away). They are clustered apart from the samples, in clusters
	// marked Experience, so they never move an enrollment cluster nor its
	// same-person fit; for the stranger fit they are queries like the
	// samples (searched among the other people: what a stranger of the
	// camera's domain meets), so the threshold keeps FAR where it is meant
	// to be in that domain too.
	Experience []Sample
}

// DistanceScaler is an optional ability of a Projector: the ratio of its
// matching space's distances to the raw backbone's (a fine-tuned head that
// contracts or spreads the space). The calibration prior (Options.Space)
// is scaled by it, so that a gallery with few people, whose threshold
// leans on the prior, does not keep a raw-space threshold in a head's
// space.
type DistanceScaler interface {
	DistanceScale() float64
}

// projScale is p's DistanceScale, 1 when p has none (or a useless one).
func projScale(p Projector) float64 {
	if ds, ok := p.(DistanceScaler); ok {
		if f := ds.DistanceScale(); f > 0 && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
	}
	return 1
}

// Match is the gallery's decision about one face.
type Match struct {
	// PersonID and Name are the nearest person, also when the face is not
	// accepted ("" only in an empty gallery).
	PersonID string `json:"person_id,omitempty"`
	Name     string `json:"name,omitempty"`
	// Known is true when the face is accepted as PersonID.
	Known bool `json:"known"`
	// Distance to PersonID's nearest cluster (unit vectors: 0..2).
	Distance float64 `json:"distance"`
	// SecondID is the next nearest person; SecondDistance its distance, or
	// that of a negative sample of PersonID when nearer (then SecondID is
	// PersonID's negative, "!"+PersonID). 2 (the largest possible) when
	// there is none.
	SecondID       string  `json:"second_id,omitempty"`
	SecondDistance float64 `json:"second_distance"`
	// Margin = SecondDistance - Distance.
	Margin float64 `json:"margin"`
	// Threshold is the distance limit this decision used.
	Threshold float64 `json:"threshold"`
	// Confidence is the calibrated probability that PersonID is right, in
	// [0,1] (see Calibration).
	Confidence float64 `json:"confidence"`
	// Reason says why the face is not accepted: ReasonEmpty, ReasonFar,
	// ReasonNegative, ReasonAmbiguous, ReasonVote; "" when Known.
	Reason string `json:"reason,omitempty"`
	// Cluster is the index of the matched cluster of PersonID.
	Cluster int `json:"cluster"`
}

// Reasons for an unknown decision.
const (
	ReasonEmpty     = "empty gallery"
	ReasonFar       = "too far"
	ReasonNegative  = "marked as not this person"
	ReasonAmbiguous = "ambiguous"
	ReasonVote      = "nearest samples disagree"
)

// noSecond is the distance reported when there is no second person.
const noSecond = 2.0

// Gallery is the in-memory matching index. Match and the other readers
// never block: they use an immutable snapshot that writers (Load, Upsert,
// Remove, Rename, AddNegative, SetProjector) rebuild and swap atomically,
// one writer at a time. All methods are safe for concurrent use.
type Gallery struct {
	opts Options

	mu     sync.Mutex // serialises writers
	people map[string]*personState
	// strangers are raw faces of people nobody enrolled that the camera
	// saw (unknown-N clusters): stranger queries of the threshold fit.
	strangers [][]float32
	proj      Projector
	rawDim    int
	version   uint64
	lastCal   Calibration
	lastCalN  int // people at the last full calibration
	// strangersSinceCal counts the stranger faces added since the last
	// full calibration (AddStrangers defers large galleries' refits).
	strangersSinceCal int

	snap atomic.Pointer[snapshot]
}

type personState struct {
	id, name   string
	samples    []Sample
	experience []Sample
	negatives  []Sample
	negUnits   [][]float32
	clusters   []Cluster
}

type snapshot struct {
	version   uint64
	proj      Projector
	rawDim    int
	people    []*personSnap // by slot
	slots     map[string]int32
	centroids *index
	clusterOf []int32 // centroid entry -> cluster number within its person
	samples   *index  // only with Options.KNN > 0
	cal       Calibration
	samplesN  int
	enrollN   int // clusters of samples (not of experience)
	expN      int // experience faces
}

type personSnap struct {
	id, name string
	negUnits [][]float32
	clusters []Cluster
	samples  int
}

// New returns an empty gallery.
func New(opts Options) *Gallery {
	opts.fill()
	g := &Gallery{opts: opts, people: map[string]*personState{}}
	g.snap.Store(&snapshot{slots: map[string]int32{}, cal: calibrate(opts, 0, 1, nil, nil)})
	return g
}

// Options returns the effective options.
func (g *Gallery) Options() Options { return g.opts }

// project maps a raw vector to a unit vector of the matching space.
func project(p Projector, raw []float32) []float32 {
	v := raw
	if p != nil {
		v = p.Project(raw)
	}
	return normalized(v)
}

func (g *Gallery) checkRaw(raw []float32) error {
	if len(raw) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidEmbedding)
	}
	if g.rawDim != 0 && len(raw) != g.rawDim {
		return fmt.Errorf("%w: %d values, the gallery has %d", ErrDimension, len(raw), g.rawDim)
	}
	for _, x := range raw {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: not finite", ErrInvalidEmbedding)
		}
	}
	return nil
}

// prepare validates and projects one person (g.mu held).
func (g *Gallery) prepare(p Person) (*personState, error) {
	if len(p.Samples) == 0 {
		return nil, fmt.Errorf("person %q: %w", p.ID, ErrNoSamples)
	}
	ps := &personState{id: p.ID, name: p.Name, samples: p.Samples, negatives: p.Negatives, experience: p.Experience}
	dim := g.rawDim
	for _, list := range [][]Sample{p.Samples, p.Negatives, p.Experience} {
		for _, s := range list {
			if dim == 0 {
				dim = len(s.Embedding)
			}
			if len(s.Embedding) != dim {
				return nil, fmt.Errorf("person %q sample %q: %w: %d values, want %d", p.ID, s.ID, ErrDimension, len(s.Embedding), dim)
			}
		}
	}
	saved := g.rawDim
	g.rawDim = dim
	if err := g.projectPerson(ps); err != nil {
		g.rawDim = saved
		return nil, err
	}
	return ps, nil
}

func (g *Gallery) projectPerson(ps *personState) error {
	// The projected samples are only needed to cluster; they are not kept
	// (memory: the raw vectors and the centroids are enough).
	units := make([][]float32, 0, len(ps.samples))
	ps.negUnits = ps.negUnits[:0]
	ids := make([]string, len(ps.samples))
	quality := make([]float32, len(ps.samples))
	for i, s := range ps.samples {
		if err := g.checkRaw(s.Embedding); err != nil {
			return fmt.Errorf("person %q sample %q: %w", ps.id, s.ID, err)
		}
		u := project(g.proj, s.Embedding)
		if u == nil {
			return fmt.Errorf("person %q sample %q: %w: zero vector", ps.id, s.ID, ErrInvalidEmbedding)
		}
		units = append(units, u)
		ids[i], quality[i] = s.ID, s.Quality
	}
	for _, s := range ps.negatives {
		if err := g.checkRaw(s.Embedding); err != nil {
			return fmt.Errorf("person %q negative %q: %w", ps.id, s.ID, err)
		}
		if u := project(g.proj, s.Embedding); u != nil {
			ps.negUnits = append(ps.negUnits, u)
		}
	}
	ps.clusters = clusterUnits(units, ids, quality, g.opts.ClusterRadius)
	if len(ps.experience) > 0 {
		xu := make([][]float32, 0, len(ps.experience))
		xids := make([]string, 0, len(ps.experience))
		xq := make([]float32, 0, len(ps.experience))
		for _, s := range ps.experience {
			if err := g.checkRaw(s.Embedding); err != nil {
				return fmt.Errorf("person %q experience %q: %w", ps.id, s.ID, err)
			}
			if u := project(g.proj, s.Embedding); u != nil {
				xu, xids, xq = append(xu, u), append(xids, s.ID), append(xq, s.Quality)
			}
		}
		for _, cl := range clusterUnits(xu, xids, xq, g.opts.ClusterRadius) {
			cl.Experience = true
			ps.clusters = append(ps.clusters, cl)
		}
	}
	return nil
}

// Load replaces the whole gallery.
func (g *Gallery) Load(people []Person) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	saved := g.rawDim
	g.rawDim = 0
	next := make(map[string]*personState, len(people))
	for _, p := range people {
		ps, err := g.prepare(p)
		if err != nil {
			g.rawDim = saved
			return err
		}
		next[p.ID] = ps
	}
	g.people = next
	g.rebuild(true)
	return nil
}

// Upsert adds a person or replaces one (all of their samples and
// negatives).
func (g *Gallery) Upsert(p Person) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	saved := g.rawDim
	if len(g.people) == 0 || (len(g.people) == 1 && g.people[p.ID] != nil) {
		g.rawDim = 0 // the only person is replaced: any dimension goes
	}
	ps, err := g.prepare(p)
	if err != nil {
		g.rawDim = saved
		return err
	}
	g.people[p.ID] = ps
	g.rebuild(false)
	return nil
}

// Remove takes a person out of the gallery; it reports whether they were in.
func (g *Gallery) Remove(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.people[id]; !ok {
		return false
	}
	delete(g.people, id)
	g.rebuild(false)
	return true
}

// Rename changes a person's display name.
func (g *Gallery) Rename(id, name string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	ps, ok := g.people[id]
	if !ok {
		return fmt.Errorf("%q: %w", id, ErrPersonNotFound)
	}
	ps.name = name
	// Names are not part of the index: copy the snapshot with the new name.
	old := g.snap.Load()
	next := *old
	next.people = append([]*personSnap(nil), old.people...)
	if slot, ok := old.slots[id]; ok {
		p := *next.people[slot]
		p.name = name
		next.people[slot] = &p
	}
	g.version++
	next.version = g.version
	g.snap.Store(&next)
	return nil
}

// AddNegative records that the face with this raw embedding is NOT the
// person: matches of the person nearer to it than the margin are refused.
func (g *Gallery) AddNegative(personID string, s Sample) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	ps, ok := g.people[personID]
	if !ok {
		return fmt.Errorf("%q: %w", personID, ErrPersonNotFound)
	}
	if err := g.checkRaw(s.Embedding); err != nil {
		return err
	}
	u := project(g.proj, s.Embedding)
	if u == nil {
		return fmt.Errorf("%w: zero vector", ErrInvalidEmbedding)
	}
	ps.negatives = append(ps.negatives, s)
	ps.negUnits = append(ps.negUnits, u)
	g.rebuild(false)
	return nil
}

// MaxStrangers caps the stranger faces SetStrangers and AddStrangers keep
// (the most recent).
const MaxStrangers = 512

// SetStrangers replaces the faces of strangers the camera saw (raw
// embeddings of the unknown-N clusters, package enroll keeps them in step):
// each is searched among everybody and its distance to the nearest person
// joins the stranger fit of the threshold, which then knows what this
// camera's strangers look like (night, far away) and not only the
// leave-one-person-out distances of the enrollment photos. Vectors of
// another dimension are skipped.
func (g *Gallery) SetStrangers(raw [][]float32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.strangers = nil
	g.addStrangers(raw)
	g.rebuild(true)
}

// AddStrangers adds stranger faces (see SetStrangers), the oldest going
// past MaxStrangers.
//
// It is called for every new unknown track, on the recognizer's goroutine,
// and a full calibration of 1,000 people takes ~0.1 s: a large gallery
// (the rebuild's own rule, 1,000 people or more) refits its threshold only
// once the faces added since the last fit reach StrangerRefit of those
// kept (at least 8); until then the new faces wait, and the old fit is
// kept. Smaller galleries refit every time (a few milliseconds).
func (g *Gallery) AddStrangers(raw [][]float32) {
	if len(raw) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	before := len(g.strangers)
	g.addStrangers(raw)
	g.strangersSinceCal += len(raw)
	due := max(8, int(StrangerRefit*float64(len(g.strangers))))
	if before == 0 || g.strangersSinceCal >= due {
		g.rebuild(true)
		return
	}
	g.rebuild(false)
}

// StrangerRefit is the share of the kept stranger faces that must be new
// before AddStrangers refits a large gallery's threshold.
const StrangerRefit = 0.1

func (g *Gallery) addStrangers(raw [][]float32) {
	for _, v := range raw {
		if len(v) == 0 || (g.rawDim != 0 && len(v) != g.rawDim) {
			continue
		}
		g.strangers = append(g.strangers, append([]float32(nil), v...))
	}
	if n := len(g.strangers) - MaxStrangers; n > 0 {
		g.strangers = append([][]float32(nil), g.strangers[n:]...)
	}
}

// SetProjector switches the matching space (a new fine-tuned head, or nil
// for the identity): every sample is re-projected from its raw embedding,
// re-clustered and the threshold re-fitted, then the new snapshot replaces
// the old one at once; a concurrent Match sees either the old gallery or
// the new one, never a mix.
func (g *Gallery) SetProjector(p Projector) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	saved := g.proj
	g.proj = p
	for _, ps := range g.people {
		if err := g.projectPerson(ps); err != nil {
			g.proj = saved
			for _, ps := range g.people {
				_ = g.projectPerson(ps)
			}
			return err
		}
	}
	g.rebuild(true)
	return nil
}

// ProjectorID names the current matching space: the HeadID() of the
// projector when it has that method, "" for the identity.
func (g *Gallery) ProjectorID() string {
	if p, ok := g.snap.Load().proj.(interface{ HeadID() string }); ok {
		return p.HeadID()
	}
	return ""
}

// Project maps a raw embedding into the current matching space (unit
// vector); used to compare faces outside the gallery (the tracker).
func (g *Gallery) Project(raw []float32) []float32 {
	return project(g.snap.Load().proj, raw)
}

// CheckEmbedding reports whether raw can be matched against (or added to)
// the gallery: the right length, finite, not all zero.
func (g *Gallery) CheckEmbedding(raw []float32) error {
	s := g.snap.Load()
	if len(raw) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidEmbedding)
	}
	if s.rawDim != 0 && len(raw) != s.rawDim {
		return fmt.Errorf("%w: %d values, the gallery has %d", ErrDimension, len(raw), s.rawDim)
	}
	for _, x := range raw {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: not finite", ErrInvalidEmbedding)
		}
	}
	if project(s.proj, raw) == nil {
		return fmt.Errorf("%w: zero vector", ErrInvalidEmbedding)
	}
	return nil
}

// ClusterSamples clusters samples the way the gallery would for one person
// in the current matching space (package enroll stores the result).
func (g *Gallery) ClusterSamples(samples []Sample) ([]Cluster, error) {
	snap := g.snap.Load()
	units := make([][]float32, 0, len(samples))
	ids := make([]string, len(samples))
	quality := make([]float32, len(samples))
	for i, s := range samples {
		if snap.rawDim != 0 && len(s.Embedding) != snap.rawDim {
			return nil, fmt.Errorf("sample %q: %w", s.ID, ErrDimension)
		}
		u := project(snap.proj, s.Embedding)
		if u == nil {
			return nil, fmt.Errorf("sample %q: %w", s.ID, ErrInvalidEmbedding)
		}
		units = append(units, u)
		ids[i], quality[i] = s.ID, s.Quality
	}
	return clusterUnits(units, ids, quality, g.opts.ClusterRadius), nil
}

// rebuild makes a new snapshot from g.people and swaps it in (g.mu held).
// fullCalibration forces re-measuring the leave-one-out distances; else a
// large gallery whose size barely changed keeps its last measurement.
func (g *Gallery) rebuild(fullCalibration bool) {
	start := time.Now()
	ids := make([]string, 0, len(g.people))
	for id := range g.people {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	s := &snapshot{proj: g.proj, rawDim: g.rawDim, slots: make(map[string]int32, len(ids))}
	// One flat matrix of every centroid; the snapshot's clusters (and the
	// writer's) point into it rather than keeping their own copies.
	total, dim := 0, 0
	for _, id := range ids {
		for _, cl := range g.people[id].clusters {
			total++
			dim = len(cl.Centroid)
		}
	}
	vecs := make([]float32, total*dim)
	owner := make([]int32, 0, total)
	s.clusterOf = make([]int32, 0, total)
	var svecs []float32
	var sowner []int32
	s.people = make([]*personSnap, 0, len(ids))
	for slot, id := range ids {
		ps := g.people[id]
		s.slots[id] = int32(slot)
		snapClusters := make([]Cluster, len(ps.clusters))
		for c, cl := range ps.clusters {
			off := len(owner) * dim
			copy(vecs[off:off+dim], cl.Centroid)
			cl.Centroid = vecs[off : off+dim : off+dim]
			ps.clusters[c].Centroid = cl.Centroid
			snapClusters[c] = cl
			owner = append(owner, int32(slot))
			s.clusterOf = append(s.clusterOf, int32(c))
		}
		for _, cl := range ps.clusters {
			if !cl.Experience {
				s.enrollN++
			}
		}
		s.expN += len(ps.experience)
		s.people = append(s.people, &personSnap{id: id, name: ps.name, negUnits: ps.negUnits, clusters: snapClusters, samples: len(ps.samples)})
		if g.opts.KNN > 0 {
			for _, smp := range ps.samples {
				svecs = append(svecs, project(g.proj, smp.Embedding)...)
				sowner = append(sowner, int32(slot))
			}
		}
		s.samplesN += len(ps.samples)
	}
	s.centroids = g.newIndex(dim, vecs, owner)
	if g.opts.KNN > 0 {
		s.samples = g.newIndex(dim, svecs, sowner)
	}
	n := len(ids)
	if !fullCalibration && g.lastCal.People >= 1000 && math.Abs(float64(n-g.lastCalN)) <= float64(g.lastCalN)/100 {
		s.cal = g.lastCal
		s.cal.People = n
	} else {
		s.cal = g.calibrate(s)
		g.lastCal, g.lastCalN = s.cal, n
		g.strangersSinceCal = 0
	}
	g.version++
	s.version = g.version
	g.snap.Store(s)
	g.opts.Logger.Debug("gallery rebuilt", "people", n, "samples", s.samplesN, "clusters", len(owner),
		"threshold", s.cal.Threshold, "took", time.Since(start))
}

func (g *Gallery) newIndex(dim int, vecs []float32, owner []int32) *index {
	codeBits := 0
	var rot *rotation
	if len(owner) > g.opts.ExactLimit {
		codeBits = 256
		rot = newRotation(dim, codeBits, 0x5eed)
	}
	return newIndex(dim, vecs, owner, codeBits, rot)
}

// calibrate measures leave-one-person-out stranger distances and
// same-person distances on up to Options.CalibrationSamples samples,
// spread evenly over the people.
func (g *Gallery) calibrate(s *snapshot) Calibration {
	n := len(s.people)
	clusters := s.enrollN // experience clusters are not what k describes
	k := 1.0
	if clusters > 0 {
		k = float64(s.samplesN) / float64(clusters)
	}
	opts := g.opts
	opts.Space = opts.Space.scaled(projScale(g.proj))
	if n == 0 {
		return calibrate(opts, 0, k, nil, nil)
	}
	step := max(1, (s.samplesN+s.expN+g.opts.CalibrationSamples-1)/g.opts.CalibrationSamples)
	var stranger, genuine []float64
	i := 0
	for slot, p := range s.people {
		ps := g.people[p.id]
		// An experience face (the camera's domain) searched among the
		// others is what a stranger in that domain meets: it counts for
		// the stranger fit (never for the same-person one).
		for _, smp := range ps.experience {
			i++
			if i%step != 0 || n < minFitPeople {
				continue
			}
			u := project(g.proj, smp.Embedding)
			r := s.centroids.search(u, searchParams{exclude: int32(slot), workers: g.opts.Workers, candidates: g.opts.Candidates})
			if r.best.slot >= 0 {
				stranger = append(stranger, distFromDot(r.best.dot))
			}
		}
		var units [][]float32 // the person's projected samples, when needed
		for j, smp := range ps.samples {
			i++
			if i%step != 0 {
				continue
			}
			u := project(g.proj, smp.Embedding)
			if n >= minFitPeople {
				r := s.centroids.search(u, searchParams{exclude: int32(slot), workers: g.opts.Workers, candidates: g.opts.Candidates})
				if r.best.slot >= 0 {
					stranger = append(stranger, distFromDot(r.best.dot))
				}
			}
			// Same person: the sample against its cluster's centroid
			// without it (clusters of one sample say nothing).
			for _, cl := range ps.clusters {
				if cl.Experience || cl.Count < 2 || !containsID(cl.Samples, smp.ID) {
					continue
				}
				if units == nil {
					units = make([][]float32, len(ps.samples))
					for jj, o := range ps.samples {
						units[jj] = project(g.proj, o.Embedding)
					}
				}
				others := make([][]float32, 0, cl.Count-1)
				for jj, uu := range units {
					if jj != j && containsID(cl.Samples, ps.samples[jj].ID) {
						others = append(others, uu)
					}
				}
				genuine = append(genuine, dist(u, meanUnit(others, nil)))
			}
		}
	}
	if n >= minFitPeople {
		for _, raw := range g.strangers {
			if len(raw) != s.rawDim {
				continue
			}
			u := project(g.proj, raw)
			if u == nil {
				continue
			}
			r := s.centroids.search(u, searchParams{exclude: -1, workers: g.opts.Workers, candidates: g.opts.Candidates})
			if r.best.slot >= 0 {
				stranger = append(stranger, distFromDot(r.best.dot))
			}
		}
	}
	// Experience clusters are more entries a stranger may come near.
	return calibrateEntries(opts, n, n+len(s.clusterOf)-s.enrollN, k, stranger, genuine)
}

func containsID(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// Match decides whose face the raw embedding is. It returns an error only
// for an embedding that cannot be compared (wrong length, not finite).
func (g *Gallery) Match(raw []float32) (Match, error) {
	return g.MatchMany([][]float32{raw}, nil)
}

// MatchMany decides about several embeddings of the same face (a track):
// their unit vectors are averaged, weighted by weights (nil: equally; face
// quality is a good weight), and the mean is matched.
func (g *Gallery) MatchMany(raws [][]float32, weights []float32) (Match, error) {
	s := g.snap.Load()
	if len(raws) == 0 {
		return Match{}, fmt.Errorf("%w: no embeddings", ErrInvalidEmbedding)
	}
	if weights != nil && len(weights) != len(raws) {
		return Match{}, fmt.Errorf("%d weights for %d embeddings", len(weights), len(raws))
	}
	units := make([][]float32, len(raws))
	var wsum float32
	for i, raw := range raws {
		if len(raw) == 0 {
			return Match{}, fmt.Errorf("%w: empty", ErrInvalidEmbedding)
		}
		if s.rawDim != 0 && len(raw) != s.rawDim {
			return Match{}, fmt.Errorf("%w: %d values, the gallery has %d", ErrDimension, len(raw), s.rawDim)
		}
		for _, x := range raw {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return Match{}, fmt.Errorf("%w: not finite", ErrInvalidEmbedding)
			}
		}
		if units[i] = project(s.proj, raw); units[i] == nil {
			return Match{}, fmt.Errorf("%w: zero or empty vector", ErrInvalidEmbedding)
		}
		if weights != nil {
			if weights[i] < 0 || math.IsNaN(float64(weights[i])) {
				return Match{}, fmt.Errorf("weight %d is %v", i, weights[i])
			}
			wsum += weights[i]
		}
	}
	if weights != nil && wsum == 0 {
		weights = nil
	}
	q := units[0]
	if len(units) > 1 {
		q = meanUnit(units, weights)
	}
	return g.decide(s, q, -1), nil
}

// decide applies the open-set rule to the unit vector q.
func (g *Gallery) decide(s *snapshot, q []float32, exclude int32) Match {
	m := Match{Threshold: s.cal.Threshold, SecondDistance: noSecond}
	if len(s.people) == 0 || s.centroids == nil {
		m.Reason = ReasonEmpty
		m.Margin = noSecond
		return m
	}
	r := s.centroids.search(q, searchParams{exclude: exclude, workers: g.opts.Workers, candidates: g.opts.Candidates})
	if r.best.slot < 0 {
		m.Reason = ReasonEmpty
		m.Margin = noSecond
		return m
	}
	best := s.people[r.best.slot]
	m.PersonID, m.Name = best.id, best.name
	m.Distance = distFromDot(r.best.dot)
	m.Cluster = int(s.clusterOf[r.best.entry])
	if r.second.slot >= 0 {
		m.SecondID = s.people[r.second.slot].id
		m.SecondDistance = distFromDot(r.second.dot)
	}
	// A negative sample of the best person counts as another person.
	negative := false
	for _, n := range best.negUnits {
		if d := distFromDot(dot(q, n)); d < m.SecondDistance {
			m.SecondID, m.SecondDistance, negative = "!"+best.id, d, true
		}
	}
	m.Margin = m.SecondDistance - m.Distance
	m.Confidence = s.cal.confidence(m.Distance, m.SecondDistance)
	switch {
	case m.Distance > m.Threshold:
		m.Reason = ReasonFar
	case negative && m.Margin < g.opts.Margin:
		m.Reason = ReasonNegative
	case m.Margin < g.opts.Margin:
		m.Reason = ReasonAmbiguous
	case g.opts.KNN > 0 && !g.voteAgrees(s, q, r.best.slot, m.Threshold):
		m.Reason = ReasonVote
	default:
		m.Known = true
	}
	if !m.Known {
		// The confidence of a refused face is what is left for "stranger".
		m.Confidence = min(m.Confidence, 0.5)
	}
	return m
}

// voteAgrees reports whether the person in slot has at least as many of
// the KNN nearest samples within the threshold as anybody else (samples
// beyond the threshold do not vote, so a person with one sample is not
// outvoted by far samples of a person with many).
func (g *Gallery) voteAgrees(s *snapshot, q []float32, slot int32, threshold float64) bool {
	r := s.samples.search(q, searchParams{exclude: -1, k: g.opts.KNN, workers: g.opts.Workers, candidates: g.opts.Candidates})
	votes := map[int32]int{}
	top, topVotes := int32(-1), 0
	for _, h := range r.knn {
		if distFromDot(h.dot) > threshold {
			continue
		}
		votes[h.slot]++
		if votes[h.slot] > topVotes {
			top, topVotes = h.slot, votes[h.slot]
		}
	}
	return topVotes == 0 || top == slot || votes[slot] == topVotes
}

// Info describes the gallery.
type Info struct {
	People      int         `json:"people"`
	Samples     int         `json:"samples"`
	Clusters    int         `json:"clusters"`
	Negatives   int         `json:"negatives"`
	Experience  int         `json:"experience"` // experience faces (in clusters of their own)
	Margin      float64     `json:"margin"`
	Calibration Calibration `json:"calibration"`
	Version     uint64      `json:"version"`
}

// Info returns the gallery's size and calibration.
func (g *Gallery) Info() Info {
	s := g.snap.Load()
	in := Info{People: len(s.people), Samples: s.samplesN, Clusters: len(s.clusterOf), Experience: s.expN, Margin: g.opts.Margin, Calibration: s.cal, Version: s.version}
	for _, p := range s.people {
		in.Negatives += len(p.negUnits)
	}
	return in
}

// Threshold returns the distance threshold in use.
func (g *Gallery) Threshold() float64 { return g.snap.Load().cal.Threshold }

// PersonClusters returns a person's clusters in the current matching space.
func (g *Gallery) PersonClusters(id string) ([]Cluster, bool) {
	s := g.snap.Load()
	slot, ok := s.slots[id]
	if !ok {
		return nil, false
	}
	return s.people[slot].clusters, true
}
