package pipeline

import (
	"context"
	"image"
	"sync"
	"testing"
	"time"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/mqtt"
)

// identity k's face: a chip filled with byte k; its embedding is the k-th
// axis with a little per-frame noise (byte 1 of the chip).
func chipOf(k, noise byte) face.Chip {
	pix := make([]byte, face.ChipSize*face.ChipSize*3)
	for i := range pix {
		pix[i] = k
	}
	pix[1] = noise
	return face.Chip{Pix: pix}
}

func axis(k int, noise float32) []float32 {
	v := make([]float32, 128)
	v[k] = 1
	v[(k+7)%128] = noise
	return v
}

type fakeEmbedder struct {
	mu    sync.Mutex
	calls int
	chips int
}

func (e *fakeEmbedder) Embed(chips []face.Chip) ([]face.Embedding, error) {
	e.mu.Lock()
	e.calls++
	e.chips += len(chips)
	e.mu.Unlock()
	out := make([]face.Embedding, len(chips))
	for i, c := range chips {
		out[i] = axis(int(c.Pix[0]), float32(c.Pix[1])/1000)
	}
	return out, nil
}

func testGallery(t *testing.T) *gallery.Gallery {
	t.Helper()
	g := gallery.New(gallery.Options{})
	people := []gallery.Person{}
	for k, name := range map[int]string{1: "alice", 2: "bob", 3: "carol"} {
		p := gallery.Person{ID: "p" + name, Name: name}
		for j := 0; j < 3; j++ {
			p.Samples = append(p.Samples, gallery.Sample{ID: name + string(rune('a'+j)), Embedding: axis(k, float32(j)/100), Quality: 1})
		}
		people = append(people, p)
	}
	if err := g.Load(people); err != nil {
		t.Fatal(err)
	}
	return g
}

// person is a face at a position with an identity.
type person struct {
	k       byte
	x, y    int
	quality float32
}

func frameWith(seq uint64, media time.Duration, ps ...person) *Frame {
	f := &Frame{Seq: seq, MediaTime: media, Time: MediaEpoch.Add(media)}
	for _, p := range ps {
		q := p.quality
		if q == 0 {
			q = 0.9
		}
		f.Faces = append(f.Faces, Face{Face: face.Face{
			Box:     image.Rect(p.x, p.y, p.x+100, p.y+100),
			Chip:    chipOf(p.k, byte(seq%7)),
			Quality: face.Quality{Score: q},
		}})
	}
	return f
}

type eventList struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventList) AddEvent(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventList) of(topic string) []Payload {
	var out []Payload
	for _, e := range l.events {
		if e.Payload.Topic() == topic {
			out = append(out, e.Payload)
		}
	}
	return out
}

func newTestRecognizer(t *testing.T, emb Embedder, o RecognizerOptions) *Recognizer {
	t.Helper()
	o.Camera, o.Embedder, o.Gallery, o.MediaClock = "door", emb, testGallery(t), true
	if o.Tracker.IDs == nil {
		o.Tracker.IDs = new(gallery.TrackIDs) // ids from 1, as the tests expect
	}
	r, err := NewRecognizer(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRecognizerOneEventPerAppearanceAndCostFollowsFaces(t *testing.T) {
	emb := &fakeEmbedder{}
	r := newTestRecognizer(t, emb, RecognizerOptions{})
	var acc eventList
	// alice walks slowly for 5 s at 10 fps.
	for i := 0; i < 50; i++ {
		f := frameWith(uint64(i+1), time.Duration(i)*100*time.Millisecond, person{k: 1, x: 100 + i, y: 100})
		if err := r.Process(f, &acc); err != nil {
			t.Fatal(err)
		}
		if i >= 2 && (f.Faces[0].Identity != "alice" || f.Faces[0].PersonID != "palice" || !f.Faces[0].Decided) {
			t.Fatalf("frame %d: face labelled %+v", i, f.Faces[0])
		}
	}
	if err := r.Flush(&acc); err != nil {
		t.Fatal(err)
	}
	rec := acc.of(mqtt.TopicRecognized)
	if len(rec) != 1 {
		t.Fatalf("%d recognized events, want 1: %+v", len(rec), acc.events)
	}
	ev := rec[0].(mqtt.Recognized)
	if ev.Name != "alice" || ev.PersonID != "palice" || ev.Camera != "door" || ev.Track != 1 || ev.Frames != 3 {
		t.Errorf("event %+v", ev)
	}
	if ev.Confidence <= 0.5 || ev.Distance > 0.1 {
		t.Errorf("confidence %v distance %v", ev.Confidence, ev.Distance)
	}
	// time = media time of the deciding frame (the third, 0.2 s).
	if got := ev.Time.Sub(MediaEpoch); got != 200*time.Millisecond {
		t.Errorf("event time %v after the epoch, want 200ms (media time)", got)
	}
	if len(acc.of(mqtt.PersonStateTopic("palice"))) != 1 || len(acc.of(mqtt.CameraStateTopic("door"))) != 1 {
		t.Errorf("retained state events missing: %+v", acc.events)
	}
	// 3 faces to decide, then one per 2 s recheck over the remaining 4.7 s.
	if emb.chips < 4 || emb.chips > 6 {
		t.Errorf("embedded %d faces for 50 frames, want 3 + ~2 rechecks", emb.chips)
	}
}

func TestRecognizerStrangerIsUnknownAfterMaxEmbeds(t *testing.T) {
	emb := &fakeEmbedder{}
	r := newTestRecognizer(t, emb, RecognizerOptions{Tracker: gallery.TrackerOptions{Decide: 3, MaxEmbeds: 6}})
	var acc eventList
	for i := 0; i < 20; i++ {
		f := frameWith(uint64(i+1), time.Duration(i)*40*time.Millisecond, person{k: 9, x: 50, y: 50})
		if err := r.Process(f, &acc); err != nil {
			t.Fatal(err)
		}
		if i < 5 && f.Faces[0].Decided {
			t.Fatalf("frame %d: stranger decided after %d faces", i, i+1)
		}
	}
	unk := acc.of(mqtt.TopicUnknown)
	if len(unk) != 1 || len(acc.of(mqtt.TopicRecognized)) != 0 {
		t.Fatalf("events %+v", acc.events)
	}
	u := unk[0].(mqtt.Unknown)
	if u.Frames != 6 || u.Track != 1 || u.NearestPersonID == "" || u.Distance < 1 {
		t.Errorf("unknown %+v", u)
	}
	if emb.chips != 6 {
		t.Errorf("embedded %d faces, want 6 (MaxEmbeds, then none until a recheck)", emb.chips)
	}
}

func TestRecognizerSeveralFacesLowQualityAndTimeouts(t *testing.T) {
	emb := &fakeEmbedder{}
	r := newTestRecognizer(t, emb, RecognizerOptions{Tracker: gallery.TrackerOptions{Timeout: time.Second}})
	var acc eventList
	media := func(i int) time.Duration { return time.Duration(i) * 100 * time.Millisecond }
	i := 0
	// bob and a blurry carol side by side for 1 s, plus a stranger for 4 frames.
	for ; i < 10; i++ {
		ps := []person{{k: 2, x: 0, y: 0}, {k: 3, x: 400, y: 0, quality: 0.1}}
		if i < 4 {
			ps = append(ps, person{k: 8, x: 800, y: 0})
		}
		if err := r.Process(frameWith(uint64(i+1), media(i), ps...), &acc); err != nil {
			t.Fatal(err)
		}
	}
	// only bob stays; the stranger's track times out and is decided unknown
	for ; i < 30; i++ {
		if err := r.Process(frameWith(uint64(i+1), media(i), person{k: 2, x: 0, y: 0}), &acc); err != nil {
			t.Fatal(err)
		}
	}
	rec, unk := acc.of(mqtt.TopicRecognized), acc.of(mqtt.TopicUnknown)
	if len(rec) != 1 || rec[0].(mqtt.Recognized).Name != "bob" {
		t.Errorf("recognized %+v", rec)
	}
	if len(unk) != 1 || unk[0].(mqtt.Unknown).Frames != 4 || unk[0].(mqtt.Unknown).Track != 3 {
		t.Errorf("unknown %+v", unk)
	}
	// carol's faces were too poor to embed: tracked (track 2), never decided.
	if len(acc.events) != 4 { // bob: recognized + 2 states; the stranger: unknown
		t.Errorf("events %+v", acc.events)
	}
	// A face too poor to embed gives no event at all, even at the end.
	if err := r.Process(frameWith(100, media(100), person{k: 7, x: 0, y: 300, quality: 0.1}), &acc); err != nil {
		t.Fatal(err)
	}
	n := len(acc.events)
	_ = r.Flush(&acc)
	if len(acc.events) != n {
		t.Errorf("a one-frame face produced events: %+v", acc.events[n:])
	}
	if _, ok := r.TrackEmbeddings(1); !ok {
		t.Error("no embeddings kept for bob's track")
	}
}

func TestRecognizerThresholdOverrideAndRecheckChange(t *testing.T) {
	emb := &fakeEmbedder{}
	// A per-camera threshold of 0.0001 accepts nobody: alice is unknown.
	r := newTestRecognizer(t, emb, RecognizerOptions{Threshold: 0.0001, Tracker: gallery.TrackerOptions{MaxEmbeds: 3}})
	var acc eventList
	for i := 0; i < 5; i++ {
		_ = r.Process(frameWith(uint64(i+1), time.Duration(i)*100*time.Millisecond, person{k: 1, x: 0, y: 0}), &acc)
	}
	if len(acc.of(mqtt.TopicUnknown)) != 1 || len(acc.of(mqtt.TopicRecognized)) != 0 {
		t.Fatalf("events with a strict threshold: %+v", acc.events)
	}

	// Someone else steps into the box: the recheck embeds the new face,
	// which is too far from the track's faces to continue it; a new track
	// is recognized as the new person.
	r = newTestRecognizer(t, emb, RecognizerOptions{Tracker: gallery.TrackerOptions{Recheck: 500 * time.Millisecond, Decide: 1}})
	acc = eventList{}
	for i := 0; i < 20; i++ {
		k := byte(1)
		if i >= 10 {
			k = 2
		}
		_ = r.Process(frameWith(uint64(i+1), time.Duration(i)*100*time.Millisecond, person{k: k, x: 0, y: 0}), &acc)
	}
	rec := acc.of(mqtt.TopicRecognized)
	if len(rec) != 2 || rec[0].(mqtt.Recognized).Name != "alice" || rec[1].(mqtt.Recognized).Name != "bob" ||
		rec[0].(mqtt.Recognized).Track == rec[1].(mqtt.Recognized).Track {
		t.Errorf("recognized %+v", rec)
	}
}

func TestNewRecognizerNeedsGalleryAndEmbedder(t *testing.T) {
	if _, err := NewRecognizer(RecognizerOptions{Camera: "x"}); err == nil {
		t.Fatal("no error without embedder and matcher")
	}
}

// The recognizer runs inside a real pipeline, events arrive in order.
func TestRecognizerInPipeline(t *testing.T) {
	emb := &fakeEmbedder{}
	var cams []Camera
	for _, name := range []string{"a", "b"} {
		r, err := NewRecognizer(RecognizerOptions{Camera: name, Embedder: emb, Gallery: testGallery(t), MediaClock: true})
		if err != nil {
			t.Fatal(err)
		}
		k := byte(1)
		if name == "b" {
			k = 9
		}
		cams = append(cams, Camera{Name: name, Source: &scriptSource{k: k, n: 40}, Processors: []Processor{r}, Lossless: true})
	}
	sink := &eventSink{}
	if err := Run(t.Context(), Options{Logger: quietLogger()}, cams, sink); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range sink.events {
		switch p := e.Payload.(type) {
		case mqtt.Recognized:
			got = append(got, e.Camera+":recognized:"+p.Name)
		case mqtt.Unknown:
			got = append(got, e.Camera+":unknown")
		}
	}
	if len(got) != 2 || !(contains(got, "a:recognized:alice") && contains(got, "b:unknown")) {
		t.Errorf("events %v", got)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// scriptSource emits n frames with one face of identity k.
type scriptSource struct {
	k byte
	n int
}

func (s *scriptSource) Run(_ context.Context, emit func(*Frame)) error {
	for i := 0; i < s.n; i++ {
		emit(frameWith(uint64(i+1), time.Duration(i)*40*time.Millisecond, person{k: s.k, x: 10, y: 10}))
	}
	return nil
}
