package service

import (
	"context"
	"testing"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
)

func track(camera string, id uint64, person string, conf float64, frames ...pipeline.TrackFrame) pipeline.TrackRecord {
	return pipeline.TrackRecord{Camera: camera, Track: id, Known: person != "",
		Match: gallery.Match{PersonID: person, Known: person != "", Confidence: conf}, Frames: frames}
}

func frame(k int, q float32, at time.Time) pipeline.TrackFrame {
	return pipeline.TrackFrame{Embedding: axis(k, 0.1), Quality: q, Time: at}
}

func TestExperienceFilesConfidentTracks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ada, err := f.svc.o.Enroller.EnrollEmbeddings(ctx, "Ada", "", embeddings(1))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := f.svc.o.Enroller.EnrollEmbeddings(ctx, "Bob", "", embeddings(2))
	if err != nil {
		t.Fatal(err)
	}
	xp := NewExperience(f.svc.o.Enroller, ExperienceOptions{MaxPerPerson: 3})
	t0 := time.Now().Add(-time.Minute)
	// Confident: filed, the poor frame left out.
	n, err := xp.File(track("door", 7, ada.PersonID, 0.95, frame(1, 0.8, t0), frame(1, 0.1, t0.Add(time.Second)), frame(1, 0.6, t0.Add(2*time.Second))))
	if err != nil || n != 2 {
		t.Fatalf("filed %d, %v; want 2 (one frame below the quality gate)", n, err)
	}
	// Not confident enough, or unknown: nothing.
	for _, tr := range []pipeline.TrackRecord{track("door", 8, ada.PersonID, 0.5, frame(1, 0.9, t0)), track("door", 9, "", 0, frame(5, 0.9, t0))} {
		if n, err := xp.File(tr); err != nil || n != 0 {
			t.Fatalf("track %d filed %d, %v; want nothing", tr.Track, n, err)
		}
	}
	if in := f.g.Info(); in.Experience != 2 || in.Samples != 4 {
		t.Fatalf("gallery: %d experience faces, %d samples; want 2 and 4 (experience apart)", in.Experience, in.Samples)
	}
	cs, _ := f.g.PersonClusters(ada.PersonID)
	if len(cs) != 2 || cs[0].Experience || !cs[1].Experience {
		t.Fatalf("clusters %+v: want the sample's, then an experience cluster", cs)
	}
	// Bounded per person: the least recently seen go.
	if _, err := xp.File(track("door", 10, ada.PersonID, 0.99, frame(1, 0.9, t0.Add(10*time.Second)), frame(1, 0.9, t0.Add(11*time.Second)))); err != nil {
		t.Fatal(err)
	}
	xs, err := f.st.Experience()
	if err != nil || len(xs) != 3 {
		t.Fatalf("%d experience faces, %v; want 3 (max per person)", len(xs), err)
	}
	if st := xp.Stats(); st.Filed != 2 || st.Faces != 4 || st.Evicted != 1 {
		t.Fatalf("stats %+v", st)
	}
	// "Not Ada, it was Bob" on track 10: its faces move to Bob.
	f.cam.tracks[10] = [][]float32{axis(1, 0.1)}
	if _, err := f.svc.Feedback(ctx, mqtt.FeedbackRequest{PersonID: ada.PersonID, Camera: "door", Track: 10, CorrectPersonID: bob.PersonID}); err != nil {
		t.Fatal(err)
	}
	xs, _ = f.st.Experience()
	byPerson := map[string]int{}
	for _, x := range xs {
		byPerson[x.PersonID]++
	}
	if byPerson[ada.PersonID] != 1 || byPerson[bob.PersonID] != 2 {
		t.Fatalf("after feedback: %v; want Ada 1 (track 7), Bob 2 (track 10)", byPerson)
	}
	// "Not Ada" on track 7: deleted.
	f.cam.tracks[7] = [][]float32{axis(1, 0.1)}
	if _, err := f.svc.Feedback(ctx, mqtt.FeedbackRequest{PersonID: ada.PersonID, Camera: "door", Track: 7}); err != nil {
		t.Fatal(err)
	}
	// Deleting Bob deletes his.
	if _, err := f.svc.o.Enroller.Delete(bob.PersonID); err != nil {
		t.Fatal(err)
	}
	if xs, _ = f.st.Experience(); len(xs) != 0 {
		t.Fatalf("%d experience faces left", len(xs))
	}
	if in := f.g.Info(); in.Experience != 0 {
		t.Fatalf("gallery still has %d experience faces", in.Experience)
	}
}

func TestExperienceQueueNeverBlocks(t *testing.T) {
	f := newFixture(t)
	xp := NewExperience(f.svc.o.Enroller, ExperienceOptions{Queue: 1})
	for i := 0; i < 5; i++ { // nobody runs the queue
		xp.ObserveTrack(track("door", uint64(i), "p", 0.99, frame(1, 0.9, time.Now())))
	}
	if st := xp.Stats(); st.Dropped != 4 || st.Tracks != 5 {
		t.Fatalf("stats %+v; want 4 dropped of 5", st)
	}
}

func embeddings(k int) []enroll.Embedding {
	return []enroll.Embedding{{Embedding: axis(k, 0), Quality: 0.9}, {Embedding: axis(k, 0.05), Quality: 0.9}}
}
