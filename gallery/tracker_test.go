package gallery

import (
	"image"
	"testing"
	"time"
)

// TestTrackerSyntheticSequence: two enrolled people walk towards each other
// and cross, while a stranger stands aside. Every face of a person must stay
// on one track (also through the crossing), each track must be decided
// once with the right identity, the stranger's as unknown, and far fewer
// faces embedded than seen.
func TestTrackerSyntheticSequence(t *testing.T) {
	rng := newRNG(11)
	a, b, s := unit(rng, testDim), unit(rng, testDim), unit(rng, testDim)
	g := New(Options{Threshold: 0.4})
	if err := g.Load([]Person{person(rng, "A", a, 3, 0.1), person(rng, "B", b, 3, 0.1)}); err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(g, TrackerOptions{})
	box := func(x, y int) image.Rectangle { return image.Rect(x, y, x+100, y+100) }
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	const frames = 40 // 4 s at 10 fps
	type who struct {
		name string
		c    []float32
	}
	trackOf := map[string]map[uint64]bool{"A": {}, "B": {}, "S": {}}
	decisions := map[uint64][]Decision{}
	var ended []TrackEnd
	seen, embedded := 0, 0
	for f := 0; f < frames; f++ {
		now := t0.Add(time.Duration(f) * 100 * time.Millisecond)
		var people []who
		var boxes []image.Rectangle
		// A goes right, B goes left, on the same line: they cross at f=15.
		if f < 30 {
			people = append(people, who{"A", a}, who{"B", b})
			boxes = append(boxes, box(10*f, 50), box(300-10*f, 50))
		}
		if f >= 5 && f < 25 {
			people = append(people, who{"S", s})
			boxes = append(boxes, box(600, 300))
		}
		quality := make([]float32, len(boxes))
		for i := range quality {
			quality[i] = 0.8
		}
		want := tr.Want(now, boxes, quality)
		dets := make([]Detection, len(boxes))
		for i := range boxes {
			dets[i] = Detection{Box: boxes[i], Quality: quality[i]}
			if want[i] {
				dets[i].Embedding = scaled(near(rng, people[i].c, 0.3), 1.4)
				embedded++
			}
			seen++
		}
		up := tr.Update(now, dets)
		if len(up.Tracks) != len(dets) {
			t.Fatalf("frame %d: %d track ids for %d faces", f, len(up.Tracks), len(dets))
		}
		for i, id := range up.Tracks {
			trackOf[people[i].name][id] = true
		}
		for _, d := range up.Decisions {
			decisions[d.Track] = append(decisions[d.Track], d)
		}
		ended = append(ended, up.Ended...)
	}
	up := tr.Flush()
	for _, d := range up.Decisions {
		decisions[d.Track] = append(decisions[d.Track], d)
	}
	ended = append(ended, up.Ended...)

	for name, ids := range trackOf {
		if len(ids) != 1 {
			t.Fatalf("%s was on %d tracks: %v", name, len(ids), ids)
		}
	}
	if len(ended) != 3 {
		t.Fatalf("%d tracks ended, want 3", len(ended))
	}
	for name, ids := range trackOf {
		for id := range ids {
			ds := decisions[id]
			if len(ds) != 1 {
				t.Fatalf("%s: %d decisions, want one per track: %+v", name, len(ds), ds)
			}
			m := ds[0].Match
			switch name {
			case "S":
				if m.Known {
					t.Fatalf("stranger recognised: %+v", m)
				}
				if len(ds[0].Faces) == 0 {
					t.Fatal("stranger decision keeps no faces to cluster")
				}
			default:
				if !m.Known || m.PersonID != name {
					t.Fatalf("%s decided as %+v", name, m)
				}
			}
			if len(ds[0].Faces) > tr.Options().Keep {
				t.Fatalf("decision keeps %d faces", len(ds[0].Faces))
			}
		}
	}
	// A and B are decided after Decide faces, then embedded only for the
	// crossing and the rechecks: the cost follows faces, not frames.
	if embedded >= seen/2 {
		t.Fatalf("embedded %d of %d faces", embedded, seen)
	}
}

func TestTrackerEndsAndReappears(t *testing.T) {
	rng := newRNG(12)
	a := unit(rng, testDim)
	g := New(Options{Threshold: 0.4})
	if err := g.Load([]Person{person(rng, "A", a, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(g, TrackerOptions{Timeout: time.Second, Decide: 2})
	t0 := time.Now()
	det := func() Detection {
		return Detection{Box: image.Rect(0, 0, 80, 80), Quality: 0.9, Embedding: near(rng, a, 0.2)}
	}
	first := tr.Update(t0, []Detection{det()}).Tracks[0]
	up := tr.Update(t0.Add(100*time.Millisecond), []Detection{det()})
	if up.Tracks[0] != first || len(up.Decisions) != 1 || !up.Decisions[0].Match.Known {
		t.Fatalf("second frame: %+v", up)
	}
	// Gone for longer than the timeout: the track ends, the next face is a
	// new appearance.
	up = tr.Update(t0.Add(3*time.Second), []Detection{det()})
	if len(up.Ended) != 1 || up.Ended[0].Track != first || up.Ended[0].Frames != 2 || up.Ended[0].Decision == nil {
		t.Fatalf("end: %+v", up.Ended)
	}
	if up.Tracks[0] == first {
		t.Fatal("a face after the timeout continued the old track")
	}
	// Low-quality faces are tracked but neither wanted nor counted.
	want := tr.Want(t0.Add(3100*time.Millisecond), []image.Rectangle{image.Rect(0, 0, 80, 80)}, []float32{0.1})
	if want[0] {
		t.Fatal("a poor face is wanted")
	}
	low := det()
	low.Quality = 0.1
	up = tr.Update(t0.Add(3200*time.Millisecond), []Detection{low})
	if len(up.Decisions) != 0 {
		t.Fatalf("decided on a poor face: %+v", up.Decisions)
	}
}

func TestIoU(t *testing.T) {
	cases := []struct {
		a, b image.Rectangle
		want float64
	}{
		{image.Rect(0, 0, 10, 10), image.Rect(0, 0, 10, 10), 1},
		{image.Rect(0, 0, 10, 10), image.Rect(5, 0, 15, 10), 50.0 / 150},
		{image.Rect(0, 0, 10, 10), image.Rect(20, 20, 30, 30), 0},
		{image.Rect(0, 0, 0, 0), image.Rect(0, 0, 0, 0), 0},
	}
	for _, c := range cases {
		if got := iou(c.a, c.b); got != c.want {
			t.Errorf("iou(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func rect(x, y int) image.Rectangle { return image.Rect(x, y, x+100, y+100) }

// TestTrackerStrangerStepsIn: someone else appearing in the very place of a
// known person (full overlap) at a typical stranger distance (~0.53) must
// start a new track, not inherit the known person's decision.
func TestTrackerStrangerStepsIn(t *testing.T) {
	rng := newRNG(21)
	a := unit(rng, testDim)
	g := New(Options{Threshold: 0.4})
	if err := g.Load([]Person{person(rng, "A", a, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(g, TrackerOptions{Timeout: time.Second, Decide: 2})
	box := image.Rect(10, 10, 110, 110)
	t0 := time.Now()
	var known uint64
	for i := 0; i < 3; i++ {
		up := tr.Update(t0.Add(time.Duration(i)*100*time.Millisecond), []Detection{{Box: box, Quality: 0.9, Embedding: near(rng, a, 0.15)}})
		known = up.Tracks[0]
	}
	stranger := near(rng, a, 0.53)
	up := tr.Update(t0.Add(400*time.Millisecond), []Detection{{Box: box, Quality: 0.9, Embedding: near(rng, stranger, 0.05)}})
	if up.Tracks[0] == known {
		t.Fatalf("a stranger at distance 0.53 in the same box continued track %d of A", known)
	}
}

// TestTrackIDsUniqueWithinARun: track ids restarted at 1 for every tracker
// (every camera, every SIGHUP reload), so (camera, track) named several
// tracks of one run; by default every tracker now shares the process's
// source.
func TestTrackIDsUniqueWithinARun(t *testing.T) {
	g := New(Options{})
	seen := map[uint64]bool{}
	for i := 0; i < 3; i++ { // a camera, then the same camera after two reloads
		tr := NewTracker(g, TrackerOptions{})
		up := tr.Update(time.Unix(100, 0), []Detection{{Box: image.Rect(0, 0, 50, 50), Quality: 0.9}})
		id := up.Tracks[0]
		if seen[id] {
			t.Fatalf("tracker %d reused track id %d", i, id)
		}
		seen[id] = true
	}
	own := NewTracker(g, TrackerOptions{IDs: new(TrackIDs)})
	if up := own.Update(time.Unix(100, 0), []Detection{{Box: image.Rect(0, 0, 50, 50), Quality: 0.9}}); up.Tracks[0] != 1 {
		t.Fatalf("a tracker with its own ids starts at %d", up.Tracks[0])
	}
}
