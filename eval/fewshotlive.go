package eval

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/service"
)

// pickExperience chooses, deterministically, round(frac * n) of a person's
// non-enrollment images for the device to live through: the images are
// ranked by FNV-64a of their base name and the first ones taken (the same
// choice on every run; it does not depend on the file order).
func pickExperience(imgs []*FewShotImage, frac float64) map[*FewShotImage]bool {
	out := map[*FewShotImage]bool{}
	n := int(frac*float64(len(imgs)) + 0.5)
	if n <= 0 {
		return out
	}
	ranked := append([]*FewShotImage(nil), imgs...)
	key := func(im *FewShotImage) uint64 {
		h := fnv.New64a()
		h.Write([]byte(filepath.Base(im.Path)))
		return h.Sum64()
	}
	sort.SliceStable(ranked, func(a, b int) bool { return key(ranked[a]) < key(ranked[b]) })
	for _, im := range ranked[:min(n, len(ranked))] {
		out[im] = true
	}
	return out
}

// discardEvents is the recognizer's event sink in an evaluation.
type discardEvents struct{}

func (discardEvents) AddEvent(pipeline.Event) {}

// Live makes the device live through its experience, through the daemon's
// own recognition path: the images of run.Lived (known people) and
// run.Seen (strangers), in path order, each as a two-frame track of
// camera "eval" (frame 1: degraded at DegradeNearScale, frame 2 at
// DegradeProbeScale, 200 ms later; both the clean image without degrade;
// the next image 10 s later, so the tracker ends and decides each track
// before the next). The frames carry wall-clock times ending now (the
// unknown identities they create are recent, as a daemon's are: the
// fine-tune leaves out identities older than its UnknownMaxAge). Every face the detector finds in a
// frame is handed to a pipeline.Recognizer with the run's gallery and the
// backbone's tracker options; its decisions reach the service's
// unknown-face clustering (unknown tracks) and service.Experience (ended
// tracks: those recognised with high confidence are filed as experience
// of that person, and the gallery refreshed at once). Nothing is labelled
// by hand: the truth is only used to count wrongly filed tracks.
func (run *FewShotRun) Live(ctx context.Context, cache *faceCache, degrade FewShotDegrade, xo service.ExperienceOptions) (FewShotLive, error) {
	var live FewShotLive
	u := gallery.NewUnknowns(gallery.UnknownOptions{Space: run.Backbone.Space})
	if _, err := enroll.LoadUnknowns(run.Store, u, run.Backbone.ID); err != nil {
		return live, err
	}
	svc, err := service.New(service.Options{Store: run.Store, Gallery: run.Gallery, Enroller: run.Enroller, Unknowns: u, Logger: run.Logger})
	if err != nil {
		return live, err
	}
	xo.Logger = run.Logger
	xp := service.NewExperience(run.Enroller, xo)
	truth := map[uint64]string{} // track -> person folder, to count mistakes only
	sink := &countingSink{inner: xp.Sink(), xp: xp, truth: truth, ids: run.IDs}
	rec, err := pipeline.NewRecognizer(pipeline.RecognizerOptions{
		Camera: "eval", Gallery: run.Gallery, Embedder: cache,
		Tracker:  gallery.TrackerOptions{Space: run.Backbone.Space},
		Unknowns: svc, Experience: sink, Logger: run.Logger,
	})
	if err != nil {
		return live, err
	}
	imgs := append(append([]*FewShotImage(nil), run.Lived...), run.Seen...)
	sort.SliceStable(imgs, func(a, b int) bool { return imgs[a].Path < imgs[b].Path })
	stranger := map[*FewShotImage]bool{}
	for _, im := range run.Seen {
		stranger[im] = true
	}
	var acc discardEvents
	start := time.Now().Add(-time.Duration(len(imgs)+1) * 10 * time.Second)
	for i, im := range imgs {
		if err := ctx.Err(); err != nil {
			return live, err
		}
		data, err := os.ReadFile(im.Path)
		if err != nil {
			return live, err
		}
		base := time.Duration(i) * 10 * time.Second
		for f, scale := range []float64{DegradeNearScale, DegradeProbeScale} {
			frame := data
			if degrade != nil {
				if frame, err = degrade(data, im.Path, scale); err != nil {
					return live, fmt.Errorf("degrade %s: %w", im.Path, err)
				}
			}
			faces, err := cache.DetectBytes(frame)
			if err != nil {
				continue // a miss: the frame has no face
			}
			pf := &pipeline.Frame{Camera: "eval", Time: start.Add(base + time.Duration(f)*200*time.Millisecond), Faces: make([]pipeline.Face, len(faces))}
			for k, fc := range faces {
				pf.Faces[k] = pipeline.Face{Face: fc}
			}
			if err := rec.Process(pf, acc); err != nil {
				return live, err
			}
			if !stranger[im] {
				for _, fc := range pf.Faces {
					if fc.Track != 0 {
						if _, ok := truth[fc.Track]; !ok {
							truth[fc.Track] = im.Person
						}
					}
				}
			} else {
				for _, fc := range pf.Faces {
					if _, ok := truth[fc.Track]; fc.Track != 0 && !ok {
						truth[fc.Track] = ""
					}
				}
			}
		}
	}
	if err := rec.Flush(acc); err != nil {
		return live, err
	}
	run.LivedSeen = true
	st := xp.Stats()
	live.Images, live.Tracks, live.Filed, live.Faces = len(imgs), st.Tracks, st.Filed, st.Faces
	live.WrongFiled = sink.wrong
	us, err := run.Store.Unknowns()
	if err != nil {
		return live, err
	}
	live.Unknowns = len(us)
	run.Logger.Info("experience lived", "shots", run.Shots, "images", live.Images, "tracks", live.Tracks, "filed", live.Filed,
		"faces", live.Faces, "wrong_filed", live.WrongFiled, "unknowns", live.Unknowns)
	return live, nil
}

// countingSink passes tracks on and counts those that will be filed under
// a person the track is not (a background face, a wrong recognition):
// measured for the report, never used to correct anything.
type countingSink struct {
	inner pipeline.ExperienceSink
	xp    *service.Experience
	truth map[uint64]string
	ids   map[string]string
	wrong int
}

func (c *countingSink) ObserveTrack(t pipeline.TrackRecord) {
	if c.xp.Wanted(t) {
		if want := c.ids[c.truth[t.Track]]; want == "" || want != t.Match.PersonID {
			c.wrong++
		}
	}
	c.inner.ObserveTrack(t)
}
