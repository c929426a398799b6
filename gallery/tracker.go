package gallery

import (
	"image"
	"sort"
	"sync/atomic"
	"time"

	"github.com/edged-dev/edged/face"
)

// TrackerOptions configure a Tracker. Zero fields take the defaults; the
// names follow the daemon's recognition config keys.
type TrackerOptions struct {
	// Space gives the defaults of SameFace and OtherFace (the backbone's
	// distances). Default DlibSpace, whose numbers the comments below use.
	Space Space `yaml:"-"`
	// MinIoU is the box overlap (intersection over union) a face needs with
	// a track's last box to continue it. Default 0.3.
	MinIoU float64 `yaml:"min_iou"`
	// SameFace: a face this near (distance of unit embeddings) to a track's
	// faces continues it even without overlap (the person moved fast or was
	// hidden for a moment). Default 0.3.
	SameFace float64 `yaml:"same_face"`
	// OtherFace: a face this far from a track's faces never continues it,
	// whatever the overlap (two people crossing, or someone else stepping
	// into the same place). Default 0.45: above same-person distances to a
	// track's mean (~0.3) and below the mean distance between two strangers
	// (~0.53); at 0.6 a stranger replacing a known person kept the known
	// person's track.
	OtherFace float64 `yaml:"other_face"`
	// MinQuality: faces below it are tracked but their embeddings do not
	// count towards the decision. Default 0.3.
	MinQuality float32 `yaml:"min_quality"`
	// Decide is how many good embedded faces a track needs before it is
	// decided; a recognised person is reported then. Default 3.
	Decide int `yaml:"decide"`
	// MaxEmbeds: a track still not recognised after this many good faces is
	// decided unknown. Default 10.
	MaxEmbeds int `yaml:"max_embeds"`
	// Recheck is how often a decided track wants one more embedded face to
	// confirm its identity. Default 2s.
	Recheck time.Duration `yaml:"recheck"`
	// Timeout ends a track not seen for this long. Default 2s.
	Timeout time.Duration `yaml:"timeout"`
	// Keep is how many best faces a track keeps for its decision. Default 10.
	Keep int `yaml:"keep"`
	// IDs hands out the track ids. Default (nil): ProcessTrackIDs, shared
	// by every tracker of the process, so track ids are unique within a
	// run (every camera, and cameras restarted by a reload) instead of
	// starting at 1 for each tracker.
	IDs *TrackIDs `yaml:"-"`
}

func (o *TrackerOptions) fill() {
	o.Space = o.Space.orDefault()
	if o.MinIoU <= 0 {
		o.MinIoU = 0.3
	}
	if o.SameFace <= 0 {
		o.SameFace = o.Space.TrackSameFace
	}
	if o.OtherFace <= 0 {
		o.OtherFace = o.Space.TrackOtherFace
	}
	if o.MinQuality <= 0 {
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
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Keep <= 0 {
		o.Keep = 10
	}
}

// Detection is one face in a frame, as the tracker sees it.
type Detection struct {
	Box     image.Rectangle
	Quality float32
	// Embedding is the raw backbone embedding, nil when the face was not
	// embedded in this frame (see Tracker.Want).
	Embedding []float32
	// Crop is the aligned face crop (face.CropTemplate), kept with the
	// track's best faces so an unknown-face cluster can show them; empty
	// when not available.
	Crop face.Chip
}

// TrackFace is one embedded face kept by a track.
type TrackFace struct {
	Embedding []float32 // raw
	Quality   float32
	Time      time.Time
	Crop      face.Chip // the face crop, when the detection had one
}

// Decision is a track's identity: made once per track (Revised marks the
// rare change after a recheck), from several faces weighted by quality.
type Decision struct {
	Track uint64
	Match Match
	// Faces are the good faces the decision used, best quality first (to
	// cluster an unknown face, or to enroll the person seen).
	Faces   []TrackFace
	Box     image.Rectangle
	First   time.Time // when the track started
	Time    time.Time // the frame of the decision
	Revised bool
}

// TrackEnd reports a track that was not seen for Timeout.
type TrackEnd struct {
	Track    uint64
	First    time.Time
	Last     time.Time
	Frames   int
	Decision *Decision // nil when the track was never decided (no good face)
}

// Update is what one frame changed.
type Update struct {
	// Tracks holds the track id of each detection, in order.
	Tracks    []uint64
	Decisions []Decision
	Ended     []TrackEnd
}

type track struct {
	id          uint64
	box         image.Rectangle
	first, last time.Time
	frames      int
	faces       []TrackFace // good faces, best quality first, <= Keep
	embedded    int         // good faces seen
	ref         []float32   // unit vector: quality-weighted mean of the faces (matching space)
	decision    *Decision
	lastEmbed   time.Time
}

// Tracker links the faces of one camera across frames (box overlap plus
// embedding distance) and makes one decision per track from several
// faces, so that events are per appearance of a person, not per frame. It
// is not safe for concurrent use: one tracker per camera, fed in frame
// order.
type Tracker struct {
	g      *Gallery
	opts   TrackerOptions
	tracks []*track
}

// TrackIDs hands out track ids, 1, 2, ... Safe for concurrent use.
type TrackIDs struct{ last atomic.Uint64 }

// Next returns the next id.
func (t *TrackIDs) Next() uint64 { return t.last.Add(1) }

// ProcessTrackIDs is the default source of every Tracker: one per process
// (per boot_id of the events), so a track id names one track of one run.
var ProcessTrackIDs = new(TrackIDs)

// NewTracker returns a tracker deciding with g.
func NewTracker(g *Gallery, opts TrackerOptions) *Tracker {
	opts.fill()
	if opts.IDs == nil {
		opts.IDs = ProcessTrackIDs
	}
	return &Tracker{g: g, opts: opts}
}

// Options returns the effective options.
func (t *Tracker) Options() TrackerOptions { return t.opts }

// Want reports, for each box of the coming frame, whether embedding its
// face would help: the face starts a new track, continues one that is
// undecided or due for a recheck, or overlaps several tracks (people
// crossing: only the face tells them apart). Faces of low quality are never
// wanted. It does not change the tracker.
func (t *Tracker) Want(now time.Time, boxes []image.Rectangle, quality []float32) []bool {
	want := make([]bool, len(boxes))
	for i, b := range boxes {
		if quality != nil && quality[i] < t.opts.MinQuality {
			continue
		}
		tr, n := t.byOverlap(now, b)
		switch {
		case tr == nil || n > 1:
			want[i] = true
		case tr.decision == nil:
			want[i] = tr.embedded < t.opts.MaxEmbeds
		default:
			want[i] = now.Sub(tr.lastEmbed) >= t.opts.Recheck
		}
	}
	return want
}

// byOverlap returns the live track overlapping b most, and how many live
// tracks overlap it by at least MinIoU.
func (t *Tracker) byOverlap(now time.Time, b image.Rectangle) (*track, int) {
	var best *track
	bi, n := 0.0, 0
	for _, tr := range t.tracks {
		if now.Sub(tr.last) > t.opts.Timeout {
			continue
		}
		if v := iou(tr.box, b); v >= t.opts.MinIoU {
			n++
			if v > bi {
				best, bi = tr, v
			}
		}
	}
	return best, n
}

// Update feeds one frame (now: its time, increasing) and returns the track
// of each detection, the decisions made and the tracks that ended.
func (t *Tracker) Update(now time.Time, dets []Detection) Update {
	var up Update
	units := make([][]float32, len(dets))
	for i, d := range dets {
		if d.Embedding != nil && t.g.CheckEmbedding(d.Embedding) == nil {
			units[i] = t.g.Project(d.Embedding)
		}
	}
	// Candidate pairs, best first: overlap, helped or vetoed by the face.
	type pair struct {
		ti, di int
		score  float64
	}
	var pairs []pair
	for ti, tr := range t.tracks {
		if now.Sub(tr.last) > t.opts.Timeout {
			continue
		}
		for di, d := range dets {
			v := iou(tr.box, d.Box)
			if units[di] == nil || tr.ref == nil {
				if v >= t.opts.MinIoU {
					pairs = append(pairs, pair{ti, di, v})
				}
				continue
			}
			dd := dist(units[di], tr.ref)
			if dd > t.opts.OtherFace || (v < t.opts.MinIoU && dd > t.opts.SameFace) {
				continue // another person, or too far away to be the same
			}
			pairs = append(pairs, pair{ti, di, v + (1 - dd)})
		}
	}
	sort.SliceStable(pairs, func(a, b int) bool { return pairs[a].score > pairs[b].score })
	up.Tracks = make([]uint64, len(dets))
	assigned := make([]*track, len(dets))
	usedTrack := make([]bool, len(t.tracks))
	for _, p := range pairs {
		if usedTrack[p.ti] || assigned[p.di] != nil {
			continue
		}
		usedTrack[p.ti] = true
		assigned[p.di] = t.tracks[p.ti]
	}
	for di, d := range dets {
		tr := assigned[di]
		if tr == nil {
			tr = &track{id: t.opts.IDs.Next(), first: now}
			t.tracks = append(t.tracks, tr)
		}
		tr.box, tr.last = d.Box, now
		tr.frames++
		up.Tracks[di] = tr.id
		if units[di] != nil && d.Quality >= t.opts.MinQuality {
			t.observe(tr, now, d, units[di])
			if dec := t.decide(tr, now, false); dec != nil {
				up.Decisions = append(up.Decisions, *dec)
			}
		}
	}
	// End tracks not seen for Timeout; an undecided track with good faces
	// is decided now with what it has.
	kept := t.tracks[:0]
	for _, tr := range t.tracks {
		if now.Sub(tr.last) <= t.opts.Timeout {
			kept = append(kept, tr)
			continue
		}
		if tr.decision == nil && len(tr.faces) > 0 {
			if dec := t.decide(tr, tr.last, true); dec != nil {
				up.Decisions = append(up.Decisions, *dec)
			}
		}
		up.Ended = append(up.Ended, TrackEnd{Track: tr.id, First: tr.first, Last: tr.last, Frames: tr.frames, Decision: tr.decision})
	}
	for i := len(kept); i < len(t.tracks); i++ {
		t.tracks[i] = nil
	}
	t.tracks = kept
	return up
}

// Flush ends every track (end of a video), deciding the undecided ones.
func (t *Tracker) Flush() Update {
	var up Update
	for _, tr := range t.tracks {
		if tr.decision == nil && len(tr.faces) > 0 {
			if dec := t.decide(tr, tr.last, true); dec != nil {
				up.Decisions = append(up.Decisions, *dec)
			}
		}
		up.Ended = append(up.Ended, TrackEnd{Track: tr.id, First: tr.first, Last: tr.last, Frames: tr.frames, Decision: tr.decision})
	}
	t.tracks = nil
	return up
}

// observe adds a good embedded face to the track.
func (t *Tracker) observe(tr *track, now time.Time, d Detection, unit []float32) {
	tr.embedded++
	tr.lastEmbed = now
	f := TrackFace{Embedding: d.Embedding, Quality: d.Quality, Time: now, Crop: d.Crop}
	i := sort.Search(len(tr.faces), func(i int) bool { return tr.faces[i].Quality < f.Quality })
	tr.faces = append(tr.faces, TrackFace{})
	copy(tr.faces[i+1:], tr.faces[i:])
	tr.faces[i] = f
	if len(tr.faces) > t.opts.Keep {
		tr.faces = tr.faces[:t.opts.Keep]
	}
	units := make([][]float32, len(tr.faces))
	w := make([]float32, len(tr.faces))
	for j, tf := range tr.faces {
		units[j] = t.g.Project(tf.Embedding)
		w[j] = tf.Quality
	}
	if len(units) > 0 && units[0] != nil {
		tr.ref = meanUnit(units, w)
	} else {
		tr.ref = unit
	}
}

// decide makes (or revises) the track's decision when due. final: the
// track ends, decide with whatever faces it has.
func (t *Tracker) decide(tr *track, now time.Time, final bool) *Decision {
	if len(tr.faces) == 0 {
		return nil
	}
	if tr.decision == nil && !final && tr.embedded < t.opts.Decide {
		return nil
	}
	raws := make([][]float32, len(tr.faces))
	w := make([]float32, len(tr.faces))
	for i, f := range tr.faces {
		raws[i], w[i] = f.Embedding, f.Quality
	}
	m, err := t.g.MatchMany(raws, w)
	if err != nil {
		return nil
	}
	if tr.decision == nil {
		// Unknown so far: keep collecting faces up to MaxEmbeds, unless
		// the track ends.
		if !m.Known && !final && tr.embedded < t.opts.MaxEmbeds {
			return nil
		}
		tr.decision = &Decision{Track: tr.id, Match: m, Faces: append([]TrackFace(nil), tr.faces...), Box: tr.box, First: tr.first, Time: now}
		return tr.decision
	}
	// A recheck: report only a change of identity.
	old := tr.decision.Match
	if m.Known == old.Known && (!m.Known || m.PersonID == old.PersonID) {
		tr.decision.Match.Confidence = m.Confidence
		return nil
	}
	tr.decision = &Decision{Track: tr.id, Match: m, Faces: append([]TrackFace(nil), tr.faces...), Box: tr.box, First: tr.first, Time: now, Revised: true}
	return tr.decision
}

// iou is the intersection over union of two boxes.
func iou(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ia := float64(in.Dx() * in.Dy())
	ua := float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - ia
	if ua <= 0 {
		return 0
	}
	return ia / ua
}
