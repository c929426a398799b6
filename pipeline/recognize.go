package pipeline

import (
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
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

// UnknownSink gives a track decided unknown a persistent identity
// (unknown-N) from its good faces; "" when none was given (faces too
// poor). nil in RecognizerOptions turns unknown clustering off.
type UnknownSink interface {
	AssignUnknown(camera string, faces []gallery.TrackFace) (string, error)
}

// ExperienceSink receives every decided track when it ends, with the good
// faces the recognizer embedded along it (crops included): the daemon's
// device experience (package service's Experience files the frames of
// tracks recognised with high confidence as in-domain faces of that
// person). ObserveTrack is called on the camera's goroutine and must not
// block (queue the work).
type ExperienceSink interface {
	ObserveTrack(t TrackRecord)
}

// TrackRecord is an ended, decided track as an ExperienceSink gets it.
type TrackRecord struct {
	Camera string
	Track  uint64
	// Known is the published decision (the camera's threshold applied);
	// Match is the gallery's decision behind it.
	Known bool
	Match gallery.Match
	// UnknownID is the unknown-N identity an unknown track was filed under
	// ("" when none).
	UnknownID   string
	First, Last time.Time
	// Frames are the track's embedded good faces in time order, at most
	// MaxTrackFrames (the earliest half and the latest ones).
	Frames []TrackFrame
}

// TrackFrame is one embedded face of a track.
type TrackFrame struct {
	Embedding face.Embedding // raw
	Quality   float32
	Time      time.Time
	Crop      face.Chip // face.CropTemplate crop (may be empty)
}

// MaxTrackFrames bounds the frames a recognizer keeps per track for its
// ExperienceSink (crops are ~100 KB each).
const MaxTrackFrames = 16

// FaceTap receives every embedded face of good quality, with its track
// (enrollment from a camera: "take the next N good faces"). It must not
// block.
type FaceTap func(camera string, track uint64, f face.Face, raw face.Embedding)

// RecognizerOptions configure a camera's Recognizer.
type RecognizerOptions struct {
	Camera string
	// Gallery matches the tracks' faces; Embedder embeds them. Required.
	Gallery  *gallery.Gallery
	Embedder Embedder
	// Tracker configures linking and the per-track decision (min_quality,
	// decide, max_embeds, recheck, track_timeout of the config).
	Tracker gallery.TrackerOptions
	// Threshold overrides the gallery's distance threshold for this camera
	// when > 0: a decision is published as recognized when its distance is
	// within it and the margin to the second person at least Margin
	// (default gallery.DefaultMargin).
	Threshold float64
	Margin    float64
	// MediaClock uses the frames' media time instead of their capture time
	// (replay: an event's "time" is its position in the file).
	MediaClock bool
	// Source is put into every event (the replayed file).
	Source string
	// Model returns the active head version for events; may be nil.
	Model func() string
	// Unknowns clusters unknown tracks (optional).
	Unknowns UnknownSink
	// Tap, when set, is asked once per frame for a FaceTap: while it
	// returns one (an enrollment from this camera is collecting faces),
	// every good face is embedded and handed to it, not only the faces the
	// track policy needs.
	Tap func(camera string) FaceTap
	// Experience receives the decided tracks when they end (optional;
	// package service's Experience).
	Experience ExperienceSink
	// Metrics shared by the cameras; nil: private series.
	Metrics *RecognitionMetrics
	// Logger, default: discard.
	Logger *slog.Logger
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
		embedded:     r.Counter("edged_faces_embedded_total", "Faces embedded (a track embeds until decided, then once per recheck).", "camera"),
		skipped:      r.Counter("edged_faces_not_embedded_total", "Faces tracked without embedding (decided track between rechecks, or quality below recognition.min_quality).", "camera"),
		tracks:       r.Counter("edged_tracks_total", "Face tracks started.", "camera"),
		recognized:   r.Counter("edged_recognitions_total", "Tracks recognized as an enrolled person.", "camera"),
		unknown:      r.Counter("edged_unknowns_total", "Tracks reported unknown.", "camera"),
		embedLatency: r.Histogram("edged_embed_seconds", "Time to embed the faces of one frame (includes waiting for the shared batch).", metrics.LatencyBuckets, "camera"),
	}
}

// Totals returns a camera's faces detected, faces embedded and tracks
// started so far.
func (m *RecognitionMetrics) Totals(camera string) (faces, embedded, tracks uint64) {
	return uint64(m.faces.With(camera).Value()), uint64(m.embedded.With(camera).Value()), uint64(m.tracks.With(camera).Value())
}

// EmbedStats summarises a camera's embedding latency per frame (the time
// Recognizer waited for the shared embedder, batching included).
func (m *RecognitionMetrics) EmbedStats(camera string) StageStats {
	return histStats("embed", m.embedLatency.With(camera))
}

// trackState is what the recognizer remembers of a track for labels and
// feedback.
type trackState struct {
	decided, known bool
	match          gallery.Match
	unknownID      string
	faces          []gallery.TrackFace
	last           time.Time
	frames         []TrackFrame // for RecognizerOptions.Experience only
	first          time.Time
}

// Recognizer is the per-camera processor after detection. It asks the
// gallery's Tracker which faces are worth embedding (a new or undecided
// track, or a decided one due for its recheck), embeds those through the
// shared Embedder, feeds the frame to the Tracker and publishes each
// decision once: recognized (with the person's and the camera's retained
// state) or unknown (with its unknown-N identity). The cost follows faces,
// not frames.
type Recognizer struct {
	o  RecognizerOptions
	tr *gallery.Tracker

	// mu guards the track state: Process, Tick and Flush run on the
	// camera's goroutine, TrackEmbeddings on a command worker. It is never
	// held across Embed, a store write or AddEvent (see Process).
	mu       sync.Mutex
	state    map[uint64]*trackState
	ended    []uint64 // ended tracks, oldest first, kept for feedback
	maxTrack uint64
	now      time.Time // the camera goroutine's clock (not guarded)

	faces, embedded, skipped, nTracks, recognized, unknown metrics.Counter
	embedLatency                                           metrics.Histogram
}

var (
	_ Processor = (*Recognizer)(nil)
	_ Flusher   = (*Recognizer)(nil)
	_ Ticker    = (*Recognizer)(nil)
)

// keepEnded is how many ended tracks a recognizer remembers for feedback.
const keepEnded = 256

// ErrNoGallery is returned by NewRecognizer without a gallery or embedder.
var ErrNoGallery = errors.New("recognizer needs a gallery and an embedder")

// NewRecognizer returns the recognition stage of one camera.
func NewRecognizer(o RecognizerOptions) (*Recognizer, error) {
	if o.Embedder == nil || o.Gallery == nil {
		return nil, ErrNoGallery
	}
	if o.Margin <= 0 {
		o.Margin = gallery.DefaultMargin
	}
	if o.Metrics == nil {
		o.Metrics = NewRecognitionMetrics(metrics.NewRegistry())
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m, c := o.Metrics, o.Camera
	return &Recognizer{
		o: o, tr: gallery.NewTracker(o.Gallery, o.Tracker), state: map[uint64]*trackState{},
		faces: m.faces.With(c), embedded: m.embedded.With(c), skipped: m.skipped.With(c),
		nTracks: m.tracks.With(c), recognized: m.recognized.With(c), unknown: m.unknown.With(c),
		embedLatency: m.embedLatency.With(c),
	}, nil
}

// Name implements Named.
func (r *Recognizer) Name() string { return "recognize" }

// MediaEpoch is what media times are counted from in the events of a
// replay: 1970-01-01T00:00:03.250Z is 3.25 s into the file.
var MediaEpoch = time.Unix(0, 0).UTC()

func (r *Recognizer) clock(f *Frame) time.Time {
	if r.o.MediaClock {
		return MediaEpoch.Add(f.MediaTime)
	}
	if f.Time.IsZero() {
		return time.Now()
	}
	return f.Time
}

// Process implements Processor. The slow calls (Embed, which waits for
// the shared batch; AssignUnknown, a store write; AddEvent, which blocks
// while the event queue is full) run without r.mu: it only guards the
// track state that TrackEmbeddings reads from the command worker, which
// must never wait for a stalled pipeline. The tracker itself is only used
// from the camera's goroutine (Process, Tick, Flush).
func (r *Recognizer) Process(f *Frame, acc Accumulator) error {
	now := r.clock(f)
	if now.Before(r.now) {
		now = r.now // the tracker wants time to increase
	}
	r.now = now
	r.faces.Add(float64(len(f.Faces)))

	boxes := make([]image.Rectangle, len(f.Faces))
	quality := make([]float32, len(f.Faces))
	for i, fc := range f.Faces {
		boxes[i], quality[i] = fc.Box, fc.Quality.Score
	}
	want := r.tr.Want(now, boxes, quality)
	var tap FaceTap
	if r.o.Tap != nil {
		tap = r.o.Tap(r.o.Camera)
	}
	var idx []int
	var chips []face.Chip
	for i := range f.Faces {
		good := quality[i] >= r.tr.Options().MinQuality && f.Faces[i].Chip.Validate() == nil
		if good && (want[i] || tap != nil) {
			idx = append(idx, i)
			chips = append(chips, f.Faces[i].Chip)
		}
	}
	r.skipped.Add(float64(len(f.Faces) - len(idx)))
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
		for k, i := range idx {
			f.Faces[i].Embedding = embs[k]
		}
	}
	dets := make([]gallery.Detection, len(f.Faces))
	for i, fc := range f.Faces {
		dets[i] = gallery.Detection{Box: fc.Box, Quality: fc.Quality.Score, Embedding: fc.Embedding, Crop: fc.Crop}
	}
	up := r.tr.Update(now, dets)
	if r.o.Experience != nil {
		r.mu.Lock()
		for i, fc := range f.Faces {
			if fc.Embedding != nil && quality[i] >= r.tr.Options().MinQuality {
				r.keepFrame(up.Tracks[i], now, fc)
			}
		}
		r.mu.Unlock()
	}
	r.finish(up, acc)
	r.mu.Lock()
	for i := range f.Faces {
		f.Faces[i].Track = up.Tracks[i]
		r.label(&f.Faces[i])
	}
	r.mu.Unlock()
	if tap != nil {
		for i := range f.Faces {
			if f.Faces[i].Embedding != nil {
				tap(r.o.Camera, f.Faces[i].Track, f.Faces[i].Face, f.Faces[i].Embedding)
			}
		}
	}
	return nil
}

// keepFrame adds an embedded face to its track's frames (r.mu held): the
// first MaxTrackFrames/2 are kept, then the latest ones.
func (r *Recognizer) keepFrame(track uint64, now time.Time, fc Face) {
	st := r.state[track]
	if st == nil {
		st = &trackState{first: now}
		r.state[track] = st
	}
	if len(st.frames) >= MaxTrackFrames {
		st.frames = append(st.frames[:MaxTrackFrames/2], st.frames[MaxTrackFrames/2+1:]...)
	}
	st.frames = append(st.frames, TrackFrame{Embedding: fc.Embedding, Quality: fc.Quality.Score, Time: now, Crop: fc.Crop})
}

// finish publishes a tracker update's decisions, then hands the ended
// decided tracks to the ExperienceSink (after their unknown identity was
// assigned).
func (r *Recognizer) finish(up gallery.Update, acc Accumulator) {
	pubs := r.apply(up)
	r.emit(pubs, acc)
	if r.o.Experience == nil {
		return
	}
	var recs []TrackRecord
	r.mu.Lock()
	for _, e := range up.Ended {
		st := r.state[e.Track]
		if st == nil {
			continue
		}
		frames := st.frames
		st.frames = nil // ended: nothing more to keep
		if !st.decided || len(frames) == 0 {
			continue
		}
		recs = append(recs, TrackRecord{Camera: r.o.Camera, Track: e.Track, Known: st.known, Match: st.match,
			UnknownID: st.unknownID, First: e.First, Last: e.Last, Frames: frames})
	}
	r.mu.Unlock()
	for _, rec := range recs {
		r.o.Experience.ObserveTrack(rec)
	}
}

// publication is a decision to publish, collected under r.mu and
// published (with its unknown identity assigned) without it.
type publication struct {
	d     gallery.Decision
	known bool
	st    *trackState
}

// apply records the decisions of a tracker update and the ended tracks in
// the track state, under r.mu, and returns the decisions to publish.
func (r *Recognizer) apply(up gallery.Update) []publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	var pubs []publication
	for _, id := range up.Tracks {
		if id > r.maxTrack {
			r.maxTrack = id
			r.nTracks.Inc()
		}
		st := r.state[id]
		if st == nil {
			st = &trackState{}
			r.state[id] = st
		}
		st.last = r.now
	}
	for _, d := range up.Decisions {
		st := r.state[d.Track]
		if st == nil {
			st = &trackState{}
			r.state[d.Track] = st
		}
		known := r.accept(d.Match)
		st.faces = d.Faces
		if st.decided && known == st.known && (!known || d.Match.PersonID == st.match.PersonID) {
			st.match = d.Match // a revision the camera's threshold does not see as a change
			continue
		}
		st.decided, st.known, st.match = true, known, d.Match
		pubs = append(pubs, publication{d: d, known: known, st: st})
	}
	for _, e := range up.Ended {
		r.ended = append(r.ended, e.Track)
		if len(r.ended) > keepEnded {
			old := r.ended[0]
			r.ended = r.ended[1:]
			delete(r.state, old)
		}
	}
	return pubs
}

// emit publishes the decisions (r.mu not held).
func (r *Recognizer) emit(pubs []publication, acc Accumulator) {
	for _, p := range pubs {
		if p.known {
			r.publishRecognized(p.d, acc)
		} else {
			r.publishUnknown(p.d, p.st, acc)
		}
	}
}

// accept applies the camera's threshold override to a gallery match.
func (r *Recognizer) accept(m gallery.Match) bool {
	if r.o.Threshold <= 0 {
		return m.Known
	}
	return m.PersonID != "" && m.Distance <= r.o.Threshold && m.Margin >= r.o.Margin &&
		m.Reason != gallery.ReasonNegative && m.Reason != gallery.ReasonVote
}

func bestQuality(fs []gallery.TrackFace) float64 {
	q := float32(0)
	for _, f := range fs {
		q = max(q, f.Quality)
	}
	return round4(float64(q))
}

func (r *Recognizer) model() string {
	if r.o.Model == nil {
		return ""
	}
	return r.o.Model()
}

func (r *Recognizer) publishRecognized(d gallery.Decision, acc Accumulator) {
	r.recognized.Inc()
	m := d.Match
	at := mqtt.At(d.Time)
	acc.AddEvent(Event{Camera: r.o.Camera, Payload: mqtt.Recognized{
		Camera: r.o.Camera, Track: d.Track, PersonID: m.PersonID, Name: m.Name,
		Distance: round4(m.Distance), Confidence: round4(m.Confidence),
		Box: mqtt.BoxOf(d.Box), Quality: bestQuality(d.Faces), Frames: len(d.Faces),
		FirstSeen: mqtt.At(d.First), Time: at, Model: r.model(), Source: r.o.Source,
	}})
	acc.AddEvent(Event{Camera: r.o.Camera, Payload: mqtt.PersonState{
		PersonID: m.PersonID, Name: m.Name, Camera: r.o.Camera, LastSeen: at, Confidence: round4(m.Confidence),
	}})
	acc.AddEvent(Event{Camera: r.o.Camera, Payload: mqtt.CameraState{
		Camera: r.o.Camera, Status: mqtt.CameraUp, PersonID: m.PersonID, Name: m.Name, LastSeen: at, Time: at,
	}})
}

func (r *Recognizer) publishUnknown(d gallery.Decision, st *trackState, acc Accumulator) {
	r.unknown.Inc()
	r.mu.Lock()
	unknownID := st.unknownID
	r.mu.Unlock()
	if r.o.Unknowns != nil && unknownID == "" {
		// A store write: outside r.mu (only this goroutine sets it).
		id, err := r.o.Unknowns.AssignUnknown(r.o.Camera, d.Faces)
		if err != nil {
			r.o.Logger.Warn("unknown face not clustered", "camera", r.o.Camera, "track", d.Track, "err", err)
		}
		unknownID = id
		r.mu.Lock()
		st.unknownID = id
		r.mu.Unlock()
	}
	m := d.Match
	dist := m.Distance
	if m.PersonID == "" {
		dist = 2 // empty gallery: as far as unit vectors get
	}
	acc.AddEvent(Event{Camera: r.o.Camera, Payload: mqtt.Unknown{
		Camera: r.o.Camera, Track: d.Track, UnknownID: unknownID,
		NearestPersonID: m.PersonID, NearestName: m.Name, Distance: round4(dist), Confidence: round4(m.Confidence),
		Box: mqtt.BoxOf(d.Box), Quality: bestQuality(d.Faces), Frames: len(d.Faces),
		FirstSeen: mqtt.At(d.First), Time: mqtt.At(d.Time), Model: r.model(), Source: r.o.Source,
	}})
}

// label copies the track's state onto a face of the frame (annotations).
func (r *Recognizer) label(fc *Face) {
	st := r.state[fc.Track]
	if st == nil || !st.decided {
		return
	}
	fc.Decided = true
	fc.Distance, fc.Confidence = st.match.Distance, st.match.Confidence
	if st.known {
		fc.Identity, fc.PersonID = st.match.Name, st.match.PersonID
	} else {
		fc.Identity = st.unknownID
	}
}

// Tick implements Ticker: a camera that went quiet still ends its tracks
// (deciding the undecided ones).
func (r *Recognizer) Tick(now time.Time, acc Accumulator) error {
	if r.o.MediaClock {
		return nil // media time does not pass without frames
	}
	if now.Before(r.now) {
		return nil
	}
	r.now = now
	r.finish(r.tr.Update(now, nil), acc)
	return nil
}

// Flush implements Flusher: the input ended (end of a file, shutdown), so
// every track ends and the undecided ones with good faces are decided.
func (r *Recognizer) Flush(acc Accumulator) error {
	r.finish(r.tr.Flush(), acc)
	return nil
}

// TrackEmbeddings returns the raw embeddings of a decided track's faces
// (running, or among the last 256 ended), for feedback commands. It only
// waits for r.mu, which no slow call holds: a stalled pipeline (an
// embedder or event queue that blocks) does not stall the command.
func (r *Recognizer) TrackEmbeddings(id uint64) ([][]float32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state[id]
	if st == nil || len(st.faces) == 0 {
		return nil, false
	}
	out := make([][]float32, len(st.faces))
	for i, f := range st.faces {
		out[i] = f.Embedding
	}
	return out, true
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
