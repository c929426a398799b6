package service

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/pipeline"
)

// ExperienceOptions configure the device experience. Zero fields take the
// defaults (fitted on one half of the LFW dev fold's people with
// `edged eval fewshot --degrade night`; see BENCHMARKS.md).
type ExperienceOptions struct {
	// MinConfidence is the calibrated confidence (gallery.Match.Confidence)
	// a track's decision needs for its frames to become experience of the
	// person: only tracks recognised with high confidence label
	// themselves. Default 0.9.
	MinConfidence float64 `yaml:"min_confidence"`
	// MinQuality is the quality score a frame needs to be kept. Default
	// 0.3 (recognition.min_quality's default: every frame the tracker
	// embeds).
	MinQuality float32 `yaml:"min_quality"`
	// MaxPerPerson and MaxTotal bound the experience faces kept; past them
	// the least recently seen are deleted. Defaults 60 and 3000 (~1 KB of
	// vector plus a ~50 KB crop each).
	MaxPerPerson int `yaml:"max_per_person"`
	MaxTotal     int `yaml:"max_total"`
	// Queue is how many ended tracks may wait for the store; more are
	// dropped (counted in Stats), recognition never waits. Default 32.
	Queue int `yaml:"queue"`
	// Logger. Default: discard.
	Logger *slog.Logger `yaml:"-"`
}

// Defaults of ExperienceOptions.
const (
	DefaultExperienceMinConfidence = 0.9
	DefaultExperienceMaxPerPerson  = 60
	DefaultExperienceMaxTotal      = 3000
)

func (o *ExperienceOptions) fill() {
	if o.MinConfidence <= 0 {
		o.MinConfidence = DefaultExperienceMinConfidence
	}
	if o.MinQuality <= 0 {
		o.MinQuality = 0.3
	}
	if o.MaxPerPerson <= 0 {
		o.MaxPerPerson = DefaultExperienceMaxPerPerson
	}
	if o.MaxTotal <= 0 {
		o.MaxTotal = DefaultExperienceMaxTotal
	}
	if o.Queue <= 0 {
		o.Queue = 32
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// ExperienceStats count what Experience did.
type ExperienceStats struct {
	Tracks  int64 `json:"tracks"`  // ended decided tracks seen
	Filed   int64 `json:"filed"`   // tracks whose frames were filed
	Faces   int64 `json:"faces"`   // experience faces stored
	Evicted int64 `json:"evicted"` // faces deleted by the bounds
	Dropped int64 `json:"dropped"` // tracks dropped: the queue was full
	Errors  int64 `json:"errors"`
}

// Experience is the daemon's device experience: the in-domain faces a
// camera shows of the people it knows, labelled by the device itself. It
// is a pipeline.ExperienceSink: every decided track reaches it when it
// ends, and a track recognised with high confidence (MinConfidence) files
// its frames (quality-gated) as experience of that person, with their
// crops, through enroll.(*Enroller).AddExperience (bounded per person and
// in total, least recently seen out first). Tracks decided unknown were
// already filed under their unknown-N identity (AssignUnknown). The
// fine-tune pairs the experience with the enrollment samples across
// domains; "not X" feedback on a track deletes the experience it gave X
// (or moves it to the right person), and deleting a person deletes theirs.
//
// ObserveTrack only queues; Run does the store writes.
//
//	xp := service.NewExperience(enroller, opts)
//	go xp.Run(ctx)
//	recognizerOptions.Experience = xp
type Experience struct {
	en    *enroll.Enroller
	o     ExperienceOptions
	queue chan pipeline.TrackRecord
	wg    sync.WaitGroup

	tracks, filed, faces, evicted, dropped, errs atomic.Int64
}

var _ pipeline.ExperienceSink = (*Experience)(nil)

// NewExperience returns the experience of the gallery behind en.
func NewExperience(en *enroll.Enroller, o ExperienceOptions) *Experience {
	o.fill()
	return &Experience{en: en, o: o, queue: make(chan pipeline.TrackRecord, o.Queue)}
}

// Options returns the effective options.
func (x *Experience) Options() ExperienceOptions { return x.o }

// ObserveTrack implements pipeline.ExperienceSink: it queues the track for
// Run, or drops it when the queue is full. It never blocks.
func (x *Experience) ObserveTrack(t pipeline.TrackRecord) {
	x.tracks.Add(1)
	if !x.wanted(t) {
		return
	}
	select {
	case x.queue <- t:
	default:
		x.dropped.Add(1)
	}
}

// Run files the queued tracks until ctx ends.
func (x *Experience) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-x.queue:
			if _, err := x.File(t); err != nil {
				x.o.Logger.Warn("experience not filed", "camera", t.Camera, "track", t.Track, "err", err)
			}
		}
	}
}

// Wanted is the filing rule: the track was recognised (the camera's
// threshold applied) with high confidence (MinConfidence).
func (x *Experience) Wanted(t pipeline.TrackRecord) bool { return x.wanted(t) }

func (x *Experience) wanted(t pipeline.TrackRecord) bool {
	return t.Known && t.Match.PersonID != "" && t.Match.Confidence >= x.o.MinConfidence
}

// File files one track now (Run's work; evaluations and tests call it
// directly). It returns how many faces were stored.
func (x *Experience) File(t pipeline.TrackRecord) (int, error) {
	if !x.wanted(t) {
		return 0, nil
	}
	var faces []enroll.ExperienceFace
	for _, f := range t.Frames {
		if f.Quality >= x.o.MinQuality {
			faces = append(faces, enroll.ExperienceFace{Embedding: f.Embedding, Quality: f.Quality, Crop: f.Crop, Time: f.Time})
		}
	}
	if len(faces) == 0 {
		return 0, nil
	}
	added, evicted, err := x.en.AddExperience(t.Match.PersonID, TrackRef(t.Camera, t.Track), t.Match.Confidence, faces,
		enroll.ExperienceBounds{MaxPerPerson: x.o.MaxPerPerson, MaxTotal: x.o.MaxTotal})
	if err != nil {
		x.errs.Add(1)
		return 0, err
	}
	x.filed.Add(1)
	x.faces.Add(int64(added))
	x.evicted.Add(int64(evicted))
	return added, nil
}

// Stats returns the counters.
func (x *Experience) Stats() ExperienceStats {
	return ExperienceStats{Tracks: x.tracks.Load(), Filed: x.filed.Load(), Faces: x.faces.Load(), Evicted: x.evicted.Load(),
		Dropped: x.dropped.Load(), Errors: x.errs.Load()}
}

// Sink returns x as a pipeline.ExperienceSink that files each track at
// once, on the caller's goroutine (evaluations: the store writes are
// part of the work measured, not a background queue).
func (x *Experience) Sink() pipeline.ExperienceSink { return syncSink{x} }

type syncSink struct{ x *Experience }

func (s syncSink) ObserveTrack(t pipeline.TrackRecord) {
	s.x.tracks.Add(1)
	if _, err := s.x.File(t); err != nil {
		s.x.o.Logger.Warn("experience not filed", "camera", t.Camera, "track", t.Track, "err", err)
	}
}

// TrackRef is the reference of a camera track in the store ("camera/track"):
// the Ref of its enrolled samples, negatives and experience faces.
func TrackRef(camera string, track uint64) string { return fmt.Sprintf("%s/%d", camera, track) }
