package pipeline

import (
	"errors"
	"fmt"
	"image"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/internal/metrics"
	"github.com/edged-dev/edged/mqtt"
)

// Embedder maps aligned chips to raw backbone embeddings (infer.Embedder,
// which batches concurrent calls from every camera into one network run).
type Embedder interface {
	Embed(chips []face.Chip) ([]face.Embedding, error)
}

// Matcher decides who a set of raw embeddings of one face track is
// (gallery.Gallery).
type Matcher interface {
	MatchMany(raws [][]float32, weights []float32) (gallery.Match, error)
}

// UnknownSink gives an unknown track a persistent identity (unknown-N) from
// its best faces; nil in RecognizerOptions turns unknown clustering off.
type UnknownSink interface {
	AssignUnknown(camera string, raws [][]float32, quality []float32, at time.Time) (string, error)
}

// FaceTap receives every embedded face of good quality, with its track
// (enrollment from a camera: "take the next N good faces"). It must not
// block.
type FaceTap func(camera string, track uint64, f face.Face, raw face.Embedding)

// RecognizerOptions configure a camera's Recognizer. Zero values take the
// defaults of config.Default (recognition.*).
type RecognizerOptions struct {
	Camera string
	// Threshold overrides the gallery's distance threshold for this camera
	// (0: the gallery's); Margin is the margin used with it.
	Threshold float64
	Margin    float64
	// MinQuality: faces below are tracked but not embedded. Default 0.3.
	MinQuality float64
	// Decide: embedded faces a track collects before its decision
	// (default 3); MaxEmbeds: an undecided track is reported unknown after
	// this many (default 10).
	Decide    int
	MaxEmbeds int
	// Recheck: a decided track embeds one face this often (default 2s).
	Recheck time.Duration
	// TrackTimeout ends a track not seen this long (default 2s).
	TrackTimeout time.Duration
	// MinIoU links a face to a track whose last box overlaps it this much
	// (default 0.2); a face of similar size whose centre is within 0.8 box
	// sides of a track's last centre also links (fast motion).
	MinIoU float64
	// MediaClock uses the frames' media time instead of their capture time
	// for timeouts and event times (replay: "time" is the media time).
	MediaClock bool
	// Source is put into every event (the replayed file).
	Source string
	// Model returns the active head version for events; may be nil.
	Model func() string

	Embedder Embedder
	Matcher  Matcher
	Unknowns UnknownSink // optional
	Metrics  *RecognitionMetrics
	// Tap, when set, sees every embedded face of good quality.
	Tap func() FaceTap
}

func (o *RecognizerOptions) fill() {
	if o.MinQuality == 0 {
		o.MinQuality = 0.3
	}
	if o.Decide <= 0 {
		o.Decide = 3
	}
	if o.MaxEmbeds < o.Decide {
		o.MaxEmbeds = max(10, o.Decide)
	}
	if o.Recheck <= 0 {
		o.Recheck = 2 * time.Second
	}
	if o.TrackTimeout <= 0 {
		o.TrackTimeout = 2 * time.Second
	}
	if o.MinIoU <= 0 {
		o.MinIoU = 0.2
	}
	if o.Margin <= 0 {
		o.Margin = gallery.DefaultMargin
	}
}

// RecognitionMetrics are the recognition series shared by every camera.
type RecognitionMetrics struct {
	faces, embedded, skipped, tracks, recognized, unknown *metrics.CounterVec
	embedLatency                                          *metrics.HistogramVec
}

// NewRecognitionMetrics registers the recognition series in r.
func NewRecognitionMetrics(r *metrics.Registry) *RecognitionMetrics {
	return &RecognitionMetrics{
		faces:        r.Counter("edged_faces_total", "Faces detected.", "camera"),
		embedded:     r.Counter("edged_faces_embedded_total", "Faces embedded (tracks embed until decided, then once per recheck).", "camera"),
		skipped:      r.Counter("edged_faces_low_quality_total", "Faces tracked but not embedded: quality below recognition.min_quality.", "camera"),
		tracks:       r.Counter("edged_tracks_total", "Face tracks started.", "camera"),
		recognized:   r.Counter("edged_recognitions_total", "Tracks recognized as an enrolled person.", "camera"),
		unknown:      r.Counter("edged_unknowns_total", "Tracks reported unknown.", "camera"),
		embedLatency: r.Histogram("edged_embed_seconds", "Time to embed the faces of one frame (includes waiting for the shared batch).", metrics.LatencyBuckets, "camera"),
	}
}

// track is one person appearance on a camera.
type track struct {
	id        uint64
	box       image.Rectangle
	firstSeen time.Time
	lastSeen  time.Time
	lastEmbed time.Time
	raws      [][]float32
	weights   []float32
	bestQ     float32
	bestBox   image.Rectangle
	decided   bool
	match     gallery.Match
	known     bool
	unknownID string
	faces     int
}

// Recognizer is the per-camera processor after detection: it links faces
// into tracks by box overlap, embeds a track's faces until the track is
// decided (then one face per Recheck), matches the track's embeddings
// together against the gallery, and publishes one event per decision:
// recognized (with the person's and camera's retained state) or unknown.
// The cost follows faces, not frames.
type Recognizer struct {
	o      RecognizerOptions
	tracks []*track
	nextID uint64
	now    time.Time

	// mu guards the tracks: Process, Tick and Flush run on the camera's
	// goroutine, TrackEmbeddings on a command worker.
	mu    sync.Mutex
	ended []*track // recent tracks, kept for feedback commands

	faces, embedded, skipped, nTracks, recognized, unknown metrics.Counter
	embedLatency                                           metrics.Histogram
}

var (
	_ Processor = (*Recognizer)(nil)
	_ Flusher   = (*Recognizer)(nil)
	_ Ticker    = (*Recognizer)(nil)
)

// ErrNoMatcher is returned by NewRecognizer without an Embedder or Matcher.
var ErrNoMatcher = errors.New("recognizer needs an embedder and a matcher")

// NewRecognizer returns the recognition stage of one camera.
func NewRecognizer(o RecognizerOptions) (*Recognizer, error) {
	o.fill()
	if o.Embedder == nil || o.Matcher == nil {
		return nil, ErrNoMatcher
	}
	if o.Metrics == nil {
		o.Metrics = NewRecognitionMetrics(metrics.NewRegistry())
	}
	m, c := o.Metrics, o.Camera
	return &Recognizer{
		o: o, nextID: 1,
		faces: m.faces.With(c), embedded: m.embedded.With(c), skipped: m.skipped.With(c),
		nTracks: m.tracks.With(c), recognized: m.recognized.With(c), unknown: m.unknown.With(c),
		embedLatency: m.embedLatency.With(c),
	}, nil
}

// Name implements Named.
func (r *Recognizer) Name() string { return "recognize" }

// mediaEpoch is what media times are counted from in events of a replay:
// 1970-01-01T00:00:03.250Z is 3.25 s into the file.
var mediaEpoch = time.Unix(0, 0).UTC()

func (r *Recognizer) clock(f *Frame) time.Time {
	if r.o.MediaClock {
		return mediaEpoch.Add(f.MediaTime)
	}
	if f.Time.IsZero() {
		return time.Now()
	}
	return f.Time
}

// Process implements Processor.
func (r *Recognizer) Process(f *Frame, acc Accumulator) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock(f)
	r.now = now
	r.faces.Add(float64(len(f.Faces)))
	r.expire(now, acc)
	assign := r.associate(f.Faces, now)

	// Which faces to embed: undecided tracks every good face, decided ones
	// once per Recheck.
	var idx []int
	var chips []face.Chip
	for i := range f.Faces {
		t := assign[i]
		fc := &f.Faces[i]
		if float64(fc.Quality.Score) < r.o.MinQuality || fc.Chip.Validate() != nil {
			r.skipped.Inc()
			continue
		}
		if t.decided && now.Sub(t.lastEmbed) < r.o.Recheck {
			continue
		}
		if !t.decided && len(t.raws) >= r.o.MaxEmbeds {
			continue
		}
		idx = append(idx, i)
		chips = append(chips, fc.Chip)
	}
	if len(chips) > 0 {
		t0 := time.Now()
		embs, err := r.o.Embedder.Embed(chips)
		r.embedLatency.Observe(time.Since(t0).Seconds())
		if err != nil {
			return fmt.Errorf("embed: %w", err) // a *FatalError stays one
		}
		if len(embs) != len(chips) {
			return fmt.Errorf("embed: %d embeddings for %d chips", len(embs), len(chips))
		}
		r.embedded.Add(float64(len(chips)))
		var tap FaceTap
		if r.o.Tap != nil {
			tap = r.o.Tap()
		}
		for k, i := range idx {
			t, fc := assign[i], &f.Faces[i]
			fc.Embedding = embs[k]
			r.addEmbedding(t, fc, embs[k], now)
			if tap != nil {
				tap(r.o.Camera, t.id, fc.Face, embs[k])
			}
		}
		seen := map[*track]bool{}
		for _, i := range idx {
			if t := assign[i]; !seen[t] {
				seen[t] = true
				if err := r.decide(t, acc, false); err != nil {
					return err
				}
			}
		}
	}
	for i := range f.Faces {
		r.label(&f.Faces[i], assign[i])
	}
	return nil
}

// associate links each face to a track (greedy by overlap), starting new
// tracks for faces that link to none.
func (r *Recognizer) associate(faces []Face, now time.Time) []*track {
	type pair struct {
		face  int
		tr    *track
		score float64
	}
	var pairs []pair
	for i := range faces {
		for _, t := range r.tracks {
			if s := linkScore(faces[i].Box, t.box, r.o.MinIoU); s > 0 {
				pairs = append(pairs, pair{i, t, s})
			}
		}
	}
	sort.SliceStable(pairs, func(a, b int) bool { return pairs[a].score > pairs[b].score })
	assign := make([]*track, len(faces))
	used := map[*track]bool{}
	for _, p := range pairs {
		if assign[p.face] != nil || used[p.tr] {
			continue
		}
		assign[p.face], used[p.tr] = p.tr, true
	}
	for i := range faces {
		t := assign[i]
		if t == nil {
			t = &track{id: r.nextID, firstSeen: now}
			r.nextID++
			r.tracks = append(r.tracks, t)
			r.nTracks.Inc()
			assign[i] = t
		}
		t.box, t.lastSeen = faces[i].Box, now
		t.faces++
		faces[i].Track = t.id
	}
	return assign
}

// linkScore is the IoU of two boxes when at least minIoU; otherwise a small
// score when the centres are within 0.8 box sides and the sizes are alike
// (a fast move); else 0.
func linkScore(a, b image.Rectangle, minIoU float64) float64 {
	inter := a.Intersect(b)
	ia := float64(inter.Dx() * inter.Dy())
	union := float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - ia
	if union > 0 && ia/union >= minIoU {
		return ia / union
	}
	ca := image.Pt((a.Min.X+a.Max.X)/2, (a.Min.Y+a.Max.Y)/2)
	cb := image.Pt((b.Min.X+b.Max.X)/2, (b.Min.Y+b.Max.Y)/2)
	side := math.Sqrt(float64(b.Dx() * b.Dy()))
	d := math.Hypot(float64(ca.X-cb.X), float64(ca.Y-cb.Y))
	ratio := float64(a.Dx()*a.Dy()) / math.Max(1, float64(b.Dx()*b.Dy()))
	if side > 0 && d < 0.8*side && ratio > 0.5 && ratio < 2 {
		return 0.01 * (1 - d/side)
	}
	return 0
}

func (r *Recognizer) addEmbedding(t *track, fc *Face, emb face.Embedding, now time.Time) {
	w := max(fc.Quality.Score, 0.05)
	t.raws = append(t.raws, emb)
	t.weights = append(t.weights, w)
	// Keep a window: the undecided track its MaxEmbeds faces, a decided one
	// the last Decide (rechecks follow the person, not the first frames).
	limit := r.o.MaxEmbeds
	if t.decided {
		limit = r.o.Decide
	}
	if n := len(t.raws); n > limit {
		t.raws = append(t.raws[:0:0], t.raws[n-limit:]...)
		t.weights = append(t.weights[:0:0], t.weights[n-limit:]...)
	}
	if fc.Quality.Score >= t.bestQ {
		t.bestQ, t.bestBox = fc.Quality.Score, fc.Box
	}
	t.lastEmbed = now
}

// accept applies the camera's threshold override to a gallery match.
func (r *Recognizer) accept(m gallery.Match) bool {
	if r.o.Threshold <= 0 {
		return m.Known
	}
	return m.PersonID != "" && m.Distance <= r.o.Threshold && m.Margin >= r.o.Margin &&
		m.Reason != gallery.ReasonNegative && m.Reason != gallery.ReasonVote
}

// decide matches the track's embeddings and publishes a decision when one
// is due: an undecided track with Decide faces that matches someone is
// recognized; one that reached MaxEmbeds (or ends, final=true) without a
// match is unknown; a decided track whose recheck matches somebody else
// (or, after being unknown, somebody enrolled meanwhile) is published anew.
func (r *Recognizer) decide(t *track, acc Accumulator, final bool) error {
	if len(t.raws) < r.o.Decide {
		return nil
	}
	m, err := r.o.Matcher.MatchMany(t.raws, t.weights)
	if err != nil {
		return fmt.Errorf("match track %d: %w", t.id, err)
	}
	known := r.accept(m)
	switch {
	case !t.decided && known:
		t.decided, t.known, t.match = true, true, m
		r.publishRecognized(t, acc)
	case !t.decided && (len(t.raws) >= r.o.MaxEmbeds || final):
		t.decided, t.known, t.match = true, false, m
		r.publishUnknown(t, acc)
	case t.decided && known && (!t.known || m.PersonID != t.match.PersonID):
		t.known, t.match = true, m
		r.publishRecognized(t, acc)
	case t.decided:
		// Same decision (or a recheck that no longer matches: a bad angle
		// does not turn a recognized person into a stranger). Keep the
		// latest distance for the annotations.
		if known || !t.known {
			t.match = m
		}
	}
	return nil
}

func (r *Recognizer) publishRecognized(t *track, acc Accumulator) {
	r.recognized.Inc()
	m := t.match
	model := ""
	if r.o.Model != nil {
		model = r.o.Model()
	}
	at := mqtt.At(r.now)
	acc.AddEvent(Event{Camera: r.o.Camera, Payload: mqtt.Recognized{
		Camera: r.o.Camera, Track: t.id, PersonID: m.PersonID, Name: m.Name,
		Distance: round4(m.Distance), Confidence: round4(m.Confidence),
		Box: mqtt.BoxOf(t.box), Quality: round4(float64(t.bestQ)), Frames: len(t.raws),
		FirstSeen: mqtt.At(t.firstSeen), Time: at, Model: model, Source: r.o.Source,
	}})
	acc.AddEvent(Event{Camera: r.o.Camera, Payload: mqtt.PersonState{
		PersonID: m.PersonID, Name: m.Name, Camera: r.o.Camera, LastSeen: at, Confidence: round4(m.Confidence),
	}})
	acc.AddEvent(Event{Camera: r.o.Camera, Payload: mqtt.CameraState{
		Camera: r.o.Camera, Status: mqtt.CameraUp, PersonID: m.PersonID, Name: m.Name, LastSeen: at, Time: at,
	}})
}

func (r *Recognizer) publishUnknown(t *track, acc Accumulator) {
	r.unknown.Inc()
	if r.o.Unknowns != nil {
		id, err := r.o.Unknowns.AssignUnknown(r.o.Camera, t.raws, t.weights, r.now)
		if err == nil {
			t.unknownID = id
		}
	}
	m := t.match
	model := ""
	if r.o.Model != nil {
		model = r.o.Model()
	}
	dist := m.Distance
	if m.PersonID == "" {
		dist = 2 // empty gallery: as far as unit vectors get
	}
	acc.AddEvent(Event{Camera: r.o.Camera, Payload: mqtt.Unknown{
		Camera: r.o.Camera, Track: t.id, UnknownID: t.unknownID,
		NearestPersonID: m.PersonID, NearestName: m.Name, Distance: round4(dist),
		Box: mqtt.BoxOf(t.box), Quality: round4(float64(t.bestQ)), Frames: len(t.raws),
		FirstSeen: mqtt.At(t.firstSeen), Time: mqtt.At(r.now), Model: model, Source: r.o.Source,
	}})
}

// label copies the track's state onto a face of the frame (annotations).
func (r *Recognizer) label(fc *Face, t *track) {
	if t == nil {
		return
	}
	fc.Track = t.id
	fc.Decided = t.decided
	if !t.decided {
		return
	}
	fc.Distance, fc.Confidence = t.match.Distance, t.match.Confidence
	if t.known {
		fc.Identity, fc.PersonID = t.match.Name, t.match.PersonID
	} else {
		fc.Identity = t.unknownID
	}
}

// expire ends tracks not seen for TrackTimeout; an undecided track that
// has enough faces is decided now (a stranger who walked by).
func (r *Recognizer) expire(now time.Time, acc Accumulator) {
	keep := r.tracks[:0]
	for _, t := range r.tracks {
		if now.Sub(t.lastSeen) <= r.o.TrackTimeout {
			keep = append(keep, t)
			continue
		}
		r.end(t, acc)
	}
	for i := len(keep); i < len(r.tracks); i++ {
		r.tracks[i] = nil
	}
	r.tracks = keep
}

// end settles a track and keeps it for feedback (r.mu held).
func (r *Recognizer) end(t *track, acc Accumulator) {
	if !t.decided {
		_ = r.decide(t, acc, true)
	}
	r.ended = append(r.ended, t)
	if len(r.ended) > 256 {
		r.ended = append(r.ended[:0:0], r.ended[len(r.ended)-256:]...)
	}
}

// Tick implements Ticker: ends tracks of a camera that went quiet.
func (r *Recognizer) Tick(now time.Time, acc Accumulator) error {
	if r.o.MediaClock {
		return nil // media time does not pass without frames
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = now
	r.expire(now, acc)
	return nil
}

// Flush implements Flusher: the input ended (end of a file, shutdown), so
// every track ends.
func (r *Recognizer) Flush(acc Accumulator) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.tracks {
		r.end(t, acc)
	}
	r.tracks = nil
	return nil
}

// TrackEmbeddings returns the raw embeddings the recognizer kept of a
// track (running, or among the last 256 ended), for feedback commands.
func (r *Recognizer) TrackEmbeddings(id uint64) ([][]float32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, list := range [][]*track{r.tracks, r.ended} {
		for i := len(list) - 1; i >= 0; i-- {
			if list[i].id == id {
				return append([][]float32(nil), list[i].raws...), true
			}
		}
	}
	return nil, false
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
