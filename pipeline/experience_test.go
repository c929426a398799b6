package pipeline

import (
	"sync"
	"testing"
	"time"

	"github.com/edged-dev/edged/face"
)

type trackSink struct {
	mu   sync.Mutex
	recs []TrackRecord
}

func (s *trackSink) ObserveTrack(t TrackRecord) {
	s.mu.Lock()
	s.recs = append(s.recs, t)
	s.mu.Unlock()
}

// TestRecognizerExperienceSink: every decided track reaches the sink once,
// when it ends, with its embedded good faces (crops included, poor faces
// left out, at most MaxTrackFrames), after its unknown identity was
// assigned; the recognizer keeps no frame of an ended track.
func TestRecognizerExperienceSink(t *testing.T) {
	sink := &trackSink{}
	r := newTestRecognizer(t, &fakeEmbedder{}, RecognizerOptions{Experience: sink})
	var acc eventList
	crop := face.Chip{Pix: make([]byte, face.CropSize*face.CropSize*3)}
	// alice for 40 frames (embedded until decided, then at rechecks).
	for i := 0; i < 40; i++ {
		f := frameWith(uint64(i+1), time.Duration(i)*100*time.Millisecond, person{k: 1, x: 10, y: 10})
		f.Faces[0].Crop = crop
		if err := r.Process(f, &acc); err != nil {
			t.Fatal(err)
		}
	}
	// A poor face of bob, then a good one, far later (alice's track ends).
	for i, q := range []float32{0.1, 0.9, 0.9, 0.9} {
		f := frameWith(uint64(100+i), 10*time.Second+time.Duration(i)*100*time.Millisecond, person{k: 2, x: 300, y: 10, quality: q})
		if err := r.Process(f, &acc); err != nil {
			t.Fatal(err)
		}
	}
	if len(sink.recs) != 1 {
		t.Fatalf("%d tracks reached the sink before the second ended, want 1 (alice's)", len(sink.recs))
	}
	a := sink.recs[0]
	if !a.Known || a.Match.PersonID != "palice" || len(a.Frames) == 0 || len(a.Frames) > MaxTrackFrames {
		t.Fatalf("alice's record: known %v %q, %d frames", a.Known, a.Match.PersonID, len(a.Frames))
	}
	if len(a.Frames[0].Crop.Pix) == 0 || a.Camera != "door" {
		t.Fatalf("frames without their crop, or camera %q", a.Camera)
	}
	for i := 1; i < len(a.Frames); i++ {
		if a.Frames[i].Time.Before(a.Frames[i-1].Time) {
			t.Fatal("frames not in time order")
		}
	}
	if err := r.Flush(&acc); err != nil {
		t.Fatal(err)
	}
	if len(sink.recs) != 2 {
		t.Fatalf("%d records after the flush, want 2", len(sink.recs))
	}
	b := sink.recs[1]
	if !b.Known || b.Match.PersonID != "pbob" || len(b.Frames) != 3 {
		t.Fatalf("bob's record: known %v %q, %d frames (want 3: the poor one left out)", b.Known, b.Match.PersonID, len(b.Frames))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, st := range r.state {
		if len(st.frames) > 0 {
			t.Fatalf("track %d still keeps %d frames after it ended", id, len(st.frames))
		}
	}
}
