package pipeline

import (
	"sync"
	"testing"
	"time"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
)

// gateEmbedder embeds like fakeEmbedder, but blocks while its gate is
// closed (a stalled embedder or batch).
type gateEmbedder struct {
	fakeEmbedder
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (e *gateEmbedder) Embed(chips []face.Chip) ([]face.Embedding, error) {
	e.once.Do(func() { close(e.entered) })
	<-e.gate
	return e.fakeEmbedder.Embed(chips)
}

// gateAcc blocks AddEvent while its gate is closed (a full event queue
// behind a stuck output).
type gateAcc struct {
	eventList
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (a *gateAcc) AddEvent(e Event) {
	a.once.Do(func() { close(a.entered) })
	<-a.gate
	a.eventList.AddEvent(e)
}

// gateUnknowns blocks AssignUnknown (a store write on a slow disk).
type gateUnknowns struct {
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (u *gateUnknowns) AssignUnknown(string, []gallery.TrackFace) (string, error) {
	u.once.Do(func() { close(u.entered) })
	<-u.gate
	return "unknown-1", nil
}

// trackEmbeddingsPrompt fails unless TrackEmbeddings returns within 100 ms.
func trackEmbeddingsPrompt(t *testing.T, r *Recognizer, track uint64, wantFound bool) {
	t.Helper()
	done := make(chan bool, 1)
	go func() { _, ok := r.TrackEmbeddings(track); done <- ok }()
	select {
	case ok := <-done:
		if ok != wantFound {
			t.Fatalf("TrackEmbeddings(%d) found = %v, want %v", track, ok, wantFound)
		}
	case <-time.After(100 * time.Millisecond):
		t.Fatal("TrackEmbeddings waited for the stalled pipeline (the recognizer held its lock across a slow call)")
	}
}

// TestTrackEmbeddingsDoesNotWaitForAStalledPipeline: the recognizer held
// its mutex around Embed, the unknown identity's store write and the
// blocking AddEvent, so the MQTT command worker (feedback by track) hung
// behind a stalled pipeline, and every command behind it. Now the slow
// calls run without the lock.
func TestTrackEmbeddingsDoesNotWaitForAStalledPipeline(t *testing.T) {
	t.Run("embedder", func(t *testing.T) {
		emb := &gateEmbedder{gate: make(chan struct{}), entered: make(chan struct{})}
		close(emb.gate)
		r := newTestRecognizer(t, emb, RecognizerOptions{})
		var acc eventList
		for i := 0; i < 3; i++ { // alice decided on track 1
			if err := r.Process(frameWith(uint64(i+1), time.Duration(i)*100*time.Millisecond, person{k: 1, x: 100, y: 100}), &acc); err != nil {
				t.Fatal(err)
			}
		}
		emb.gate = make(chan struct{})
		emb.entered, emb.once = make(chan struct{}), sync.Once{}
		done := make(chan struct{})
		go func() { // bob appears: his face waits in Embed
			defer close(done)
			_ = r.Process(frameWith(4, 300*time.Millisecond, person{k: 1, x: 100, y: 100}, person{k: 2, x: 400, y: 100}), &acc)
		}()
		<-emb.entered
		trackEmbeddingsPrompt(t, r, 1, true)
		close(emb.gate)
		<-done
	})
	t.Run("event queue", func(t *testing.T) {
		r := newTestRecognizer(t, &fakeEmbedder{}, RecognizerOptions{})
		acc := &gateAcc{gate: make(chan struct{}), entered: make(chan struct{})}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 3; i++ { // the third frame decides: AddEvent blocks
				_ = r.Process(frameWith(uint64(i+1), time.Duration(i)*100*time.Millisecond, person{k: 1, x: 100, y: 100}), acc)
			}
		}()
		<-acc.entered
		trackEmbeddingsPrompt(t, r, 1, true)
		close(acc.gate)
		<-done
	})
	t.Run("unknown store write", func(t *testing.T) {
		unk := &gateUnknowns{gate: make(chan struct{}), entered: make(chan struct{})}
		r := newTestRecognizer(t, &fakeEmbedder{}, RecognizerOptions{Unknowns: unk, Tracker: gallery.TrackerOptions{Decide: 3, MaxEmbeds: 3}})
		var acc eventList
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 4; i++ { // a stranger (identity 9): decided unknown
				_ = r.Process(frameWith(uint64(i+1), time.Duration(i)*100*time.Millisecond, person{k: 9, x: 100, y: 100}), &acc)
			}
		}()
		<-unk.entered
		trackEmbeddingsPrompt(t, r, 1, true)
		close(unk.gate)
		<-done
	})
}
