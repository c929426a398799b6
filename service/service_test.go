package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"sync"
	"testing"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/store"
)

// Test doubles for detection and embedding: an image's red value k is the
// identity of the one face in it (0: no face); the face's embedding is the
// k-th axis (plus a little noise from the green value).

func photo(k, noise uint8) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = k, noise, 0, 255
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

type fakeFinder struct{}

func (fakeFinder) DetectBytes(data []byte) ([]face.Face, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	r, g, _, _ := img.At(0, 0).RGBA()
	if r == 0 {
		return nil, nil
	}
	pix := make([]byte, face.ChipSize*face.ChipSize*3)
	pix[0], pix[1] = byte(r>>8), byte(g>>8)
	return []face.Face{{Box: image.Rect(8, 8, 56, 56), Score: 0.99, Chip: face.Chip{Pix: pix}, Quality: face.Quality{Score: 0.9}}}, nil
}

type fakeEmbedder struct{}

func axis(k int, noise float32) []float32 {
	v := make([]float32, 128)
	v[k%128] = 1
	v[(k+7)%128] = noise
	return v
}

func (fakeEmbedder) Embed(chips []face.Chip) ([]face.Embedding, error) {
	out := make([]face.Embedding, len(chips))
	for i, c := range chips {
		out[i] = axis(int(c.Pix[0]), float32(c.Pix[1])/1000)
	}
	return out, nil
}

type fakeCameras struct {
	tracks map[uint64][][]float32
}

func (c *fakeCameras) CameraStats() []pipeline.CameraStats {
	return []pipeline.CameraStats{{Camera: "door", Frames: 10, FPS: 12.345, Dropped: 2}}
}

func (c *fakeCameras) TrackEmbeddings(camera string, track uint64) ([][]float32, bool) {
	r, ok := c.tracks[track]
	return r, ok && camera == "door"
}

type fakeFinetune struct {
	mu       sync.Mutex
	triggers int
}

func (f *fakeFinetune) Trigger() { f.mu.Lock(); f.triggers++; f.mu.Unlock() }
func (f *fakeFinetune) Start(context.Context, string, int, bool) (string, int, error) {
	return "job1", 20, nil
}
func (f *fakeFinetune) State() string { return "" }

type fixture struct {
	st  *store.Store
	g   *gallery.Gallery
	svc *Service
	ft  *fakeFinetune
	cam *fakeCameras
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := gallery.New(gallery.Options{})
	f := &fixture{st: st, g: g, ft: &fakeFinetune{}, cam: &fakeCameras{tracks: map[uint64][][]float32{}}}
	en := enroll.New(st, g, fakeFinder{}, fakeEmbedder{}, enroll.Options{
		Events: func(r enroll.Result) []store.OutboxEvent { return f.svc.EnrollEvents(r) },
	})
	f.svc, err = New(Options{Device: "pi", Version: "test", Store: st, Gallery: g, Enroller: en, Finetune: f.ft, Cameras: f.cam,
		Unknowns: gallery.NewUnknowns(gallery.UnknownOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// outbox returns the decoded events waiting in the store, by topic.
func (f *fixture) outbox(t *testing.T) map[string][]mqtt.Payload {
	t.Helper()
	evs, err := NewStoreOutbox(f.st).Pending(1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]mqtt.Payload{}
	for _, e := range evs {
		p, err := mqtt.DecodeEvent(e.Topic, e.Payload)
		if err != nil {
			t.Fatalf("%s: %v", e.Topic, err)
		}
		out[e.Topic] = append(out[e.Topic], p)
	}
	return out
}

func images(ks ...uint8) mqtt.Images {
	var ims mqtt.Images
	for i, k := range ks {
		ims = append(ims, mqtt.Image{Data: photo(k, uint8(i)), Format: "png", Width: 64, Height: 64})
	}
	return ims
}

func codeOf(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return ""
}

func TestEnrollImagesStoresPersonAndEvent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, err := f.svc.Enroll(ctx, mqtt.EnrollRequest{ID: "r1", Name: "Alice", Images: images(1, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.SamplesAdded != 3 || res.SamplesTotal != 3 || res.Name != "Alice" {
		t.Fatalf("result %+v", res)
	}
	ob := f.outbox(t)
	en := ob[mqtt.TopicEnrolled]
	if len(en) != 1 {
		t.Fatalf("outbox %v", ob)
	}
	e := en[0].(mqtt.Enrolled)
	if e.RequestID != "r1" || e.Source != mqtt.SourceImages || e.PersonID != res.PersonID || e.SamplesAdded != 3 {
		t.Errorf("enrolled event %+v", e)
	}
	if ps := ob[mqtt.PersonStateTopic(res.PersonID)]; len(ps) != 1 || ps[0].(mqtt.PersonState).Name != "Alice" {
		t.Errorf("person state %v", ps)
	}
	if f.ft.triggers != 1 {
		t.Errorf("fine-tune triggered %d times", f.ft.triggers)
	}
	// The gallery knows her now.
	m, err := f.g.Match(axis(1, 0.002))
	if err != nil || !m.Known || m.Name != "Alice" {
		t.Errorf("match %+v %v", m, err)
	}
	// More samples for the same person by id.
	res2, err := f.svc.Enroll(ctx, mqtt.EnrollRequest{ID: "r2", PersonID: res.PersonID, Images: images(1)})
	if err != nil || res2.Created || res2.SamplesTotal != 4 {
		t.Errorf("second enroll %+v %v", res2, err)
	}
}

func TestEnrollRefusalsChangeNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		req  mqtt.EnrollRequest
		code string
	}{
		{mqtt.EnrollRequest{ID: "a", Name: "Bob", Images: images(2, 0)}, mqtt.CodeNoFace}, // one image has no face: all or nothing
		{mqtt.EnrollRequest{ID: "b", PersonID: "01HZZZZZZZZZZZZZZZZZZZZZZZ", Images: images(2)}, mqtt.CodeUnknownPerson},
		{mqtt.EnrollRequest{ID: "c", Name: "Bob", FromUnknown: "unknown-9"}, mqtt.CodeUnknownCluster},
		{mqtt.EnrollRequest{ID: "d", Name: "Bob", Camera: "garage", NextFaces: 3}, mqtt.CodeUnknownCamera},
	}
	for _, tt := range tests {
		_, err := f.svc.Enroll(ctx, tt.req)
		if got := codeOf(err); got != tt.code {
			t.Errorf("%s: code %q (%v), want %q", tt.req.ID, got, err, tt.code)
		}
	}
	if ps, _ := f.st.People(); len(ps) != 0 {
		t.Errorf("refused enrollments stored %v", ps)
	}
	if ob := f.outbox(t); len(ob) != 0 {
		t.Errorf("refused enrollments queued events %v", ob)
	}
}

func TestDeleteRenameGetList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice, _ := f.svc.Enroll(ctx, mqtt.EnrollRequest{ID: "r1", Name: "Alice", Images: images(1, 1)})
	bob, _ := f.svc.Enroll(ctx, mqtt.EnrollRequest{ID: "r2", Name: "Bob", Images: images(2, 2)})

	// A recognition seen by the service shows as last seen.
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	f.svc.Observe(pipeline.Event{Camera: "door", Payload: mqtt.Recognized{Camera: "door", PersonID: bob.PersonID, Name: "Bob", Time: mqtt.At(at)}})

	p, err := f.svc.Rename(ctx, mqtt.RenameRequest{ID: "r3", PersonID: bob.PersonID, Name: "Robert"})
	if err != nil || p.Name != "Robert" || p.Samples != 2 || p.Clusters < 1 || p.LastCamera != "door" || !p.LastSeen.Equal(at) {
		t.Fatalf("rename: %+v %v", p, err)
	}
	if _, err := f.svc.Rename(ctx, mqtt.RenameRequest{ID: "r4", PersonID: bob.PersonID, Name: "alice"}); codeOf(err) != mqtt.CodeConflict {
		t.Errorf("rename onto a taken name: %v", err)
	}
	list, err := f.svc.List(ctx, mqtt.ListRequest{ID: "r5"})
	if err != nil || len(list.People) != 2 || list.People[0].Name != "Alice" || list.People[1].Name != "Robert" {
		t.Fatalf("list %+v %v", list, err)
	}
	if _, err := f.svc.Get(ctx, mqtt.GetRequest{ID: "r6", PersonID: "nobody"}); codeOf(err) != mqtt.CodeUnknownPerson {
		t.Errorf("get unknown: %v", err)
	}
	del, err := f.svc.Delete(ctx, mqtt.DeleteRequest{ID: "r7", PersonID: alice.PersonID})
	if err != nil || del.Samples != 2 || del.Name != "Alice" {
		t.Fatalf("delete %+v %v", del, err)
	}
	if _, err := f.svc.Delete(ctx, mqtt.DeleteRequest{ID: "r8", PersonID: alice.PersonID}); codeOf(err) != mqtt.CodeUnknownPerson {
		t.Errorf("second delete: %v", err)
	}
	ob := f.outbox(t)
	if d := ob[mqtt.TopicDeleted]; len(d) != 1 || d[0].(mqtt.Deleted).RequestID != "r7" {
		t.Errorf("deleted events %v", d)
	}
	// The retained state of the deleted person is cleared (empty payload).
	evs, _ := NewStoreOutbox(f.st).Pending(100)
	cleared := false
	for _, e := range evs {
		if e.Topic == mqtt.PersonStateTopic(alice.PersonID) && len(e.Payload) == 0 && e.Retain {
			cleared = true
		}
	}
	if !cleared {
		t.Error("retained person state not cleared after delete")
	}
	if m, _ := f.g.Match(axis(1, 0)); m.Known {
		t.Errorf("deleted person still matches: %+v", m)
	}
}

func TestFeedbackByTrackAndSample(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice, _ := f.svc.Enroll(ctx, mqtt.EnrollRequest{ID: "r1", Name: "Alice", Images: images(1, 1, 1)})
	bob, _ := f.svc.Enroll(ctx, mqtt.EnrollRequest{ID: "r2", Name: "Bob", Images: images(2, 2)})
	// Track 7 of the door camera was Bob, reported as Alice.
	f.cam.tracks[7] = [][]float32{axis(2, 0.003), axis(2, 0.004)}
	res, err := f.svc.Feedback(ctx, mqtt.FeedbackRequest{ID: "f1", PersonID: alice.PersonID, Camera: "door", Track: 7, CorrectPersonID: bob.PersonID})
	if err != nil || res.NegativePairs != 2 || res.SamplesAdded != 2 || !res.Recorded {
		t.Fatalf("feedback %+v %v", res, err)
	}
	var negs []store.Negative
	_ = f.st.View(func(tx *store.Tx) (err error) { negs, err = tx.Negatives(alice.PersonID); return err })
	if len(negs) != 2 {
		t.Errorf("negatives of alice: %d", len(negs))
	}
	for _, tt := range []struct {
		req  mqtt.FeedbackRequest
		code string
	}{
		{mqtt.FeedbackRequest{ID: "f2", PersonID: alice.PersonID, Camera: "garage", Track: 7}, mqtt.CodeUnknownCamera},
		{mqtt.FeedbackRequest{ID: "f3", PersonID: alice.PersonID, Camera: "door", Track: 99}, mqtt.CodeInvalidField},
		{mqtt.FeedbackRequest{ID: "f4", PersonID: "nobody", Camera: "door", Track: 7}, mqtt.CodeUnknownPerson},
		{mqtt.FeedbackRequest{ID: "f5", PersonID: alice.PersonID, SampleID: "nosuch"}, mqtt.CodeInvalidField},
	} {
		if _, err := f.svc.Feedback(ctx, tt.req); codeOf(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.req.ID, err, tt.code)
		}
	}
	// By sample: one of Bob's samples was really someone else.
	samples, _ := f.st.Samples(bob.PersonID)
	res, err = f.svc.Feedback(ctx, mqtt.FeedbackRequest{ID: "f6", PersonID: bob.PersonID, SampleID: samples[0].ID})
	if err != nil || res.SamplesRemoved != 1 || res.NegativePairs != 1 {
		t.Fatalf("feedback by sample %+v %v", res, err)
	}
	if after, _ := f.st.Samples(bob.PersonID); len(after) != len(samples)-1 {
		t.Errorf("samples %d -> %d", len(samples), len(after))
	}
	// The stored clusters follow the samples (they are what a restart loads).
	var cl store.Clusters
	_ = f.st.View(func(tx *store.Tx) (err error) { cl, err = tx.Clusters(bob.PersonID); return err })
	n := 0
	for _, c := range cl.Clusters {
		n += c.Count
		for _, id := range c.Samples {
			if id == samples[0].ID {
				t.Errorf("removed sample %s still in a stored cluster", id)
			}
		}
	}
	if n != len(samples)-1 {
		t.Errorf("stored clusters count %d samples, want %d", n, len(samples)-1)
	}
}

func TestEnrollFromCameraAndFromUnknown(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	done := make(chan struct{})
	var res mqtt.EnrollResult
	var err error
	go func() {
		res, err = f.svc.Enroll(ctx, mqtt.EnrollRequest{ID: "c1", Name: "Carol", Camera: "door", NextFaces: 3, TimeoutS: 10})
		close(done)
	}()
	// The pipeline's recognizer feeds faces while the tap is active.
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; n < 10 && time.Now().Before(deadline); {
		tap := f.svc.FaceTap("door")
		if tap == nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if f.svc.FaceTap("yard") != nil {
			t.Error("tap active for another camera")
		}
		tap("door", 4, face.Face{Quality: face.Quality{Score: 0.2}}, axis(3, 0)) // too poor: ignored
		tap("door", 4, face.Face{Quality: face.Quality{Score: 0.9}}, axis(3, float32(n)/1000))
		n++
		select {
		case <-done:
			n = 10
		default:
		}
	}
	<-done
	if err != nil || !res.Created || res.SamplesAdded != 3 {
		t.Fatalf("enroll from camera %+v %v", res, err)
	}
	if f.svc.FaceTap("door") != nil {
		t.Error("tap still active after the enrollment")
	}
	// Timeout without faces.
	_, err = f.svc.Enroll(ctx, mqtt.EnrollRequest{ID: "c2", Name: "Dan", Camera: "door", NextFaces: 3, TimeoutS: 0.05})
	if codeOf(err) != mqtt.CodeTimeout {
		t.Errorf("camera enroll without faces: %v", err)
	}

	// An unknown cluster from two tracks of the same stranger, then enrolled.
	now := time.Now()
	tf := func(k int, noise, q float32, at time.Time) gallery.TrackFace {
		return gallery.TrackFace{Embedding: axis(k, noise), Quality: q, Time: at}
	}
	withCrop := tf(9, 0.02, 0.9, now)
	withCrop.Crop = face.Chip{Size: face.CropSize, Pix: make([]uint8, face.CropSize*face.CropSize*3)}
	id1, err := f.svc.AssignUnknown("door", []gallery.TrackFace{tf(9, 0.01, 0.8, now), withCrop})
	if err != nil {
		t.Fatal(err)
	}
	// The track's best face crop is kept as the cluster's picture.
	if err := f.st.View(func(tx *store.Tx) error {
		slots, err := tx.UnknownCropSlots(id1)
		if err == nil && len(slots) != 1 {
			t.Errorf("unknown %s: %d pictures kept, want 1", id1, len(slots))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	id2, _ := f.svc.AssignUnknown("yard", []gallery.TrackFace{tf(9, 0.03, 0.7, now.Add(time.Minute))})
	id3, _ := f.svc.AssignUnknown("door", []gallery.TrackFace{tf(20, 0, 0.7, now)})
	if id, err := f.svc.AssignUnknown("door", []gallery.TrackFace{tf(30, 0, 0.1, now)}); id != "" || err != nil {
		t.Errorf("a poor face made an unknown identity %q (%v)", id, err)
	}
	if id1 != id2 || id1 == id3 {
		t.Fatalf("clusters %s %s %s", id1, id2, id3)
	}
	list, _ := f.svc.List(ctx, mqtt.ListRequest{ID: "l", Unknown: true})
	if len(list.Unknown) != 2 || list.Unknown[0].Count != 2 || list.Unknown[0].Camera != "yard" {
		t.Fatalf("unknown clusters %+v", list.Unknown)
	}
	res, err = f.svc.Enroll(ctx, mqtt.EnrollRequest{ID: "u1", Name: "Erin", FromUnknown: id1})
	if err != nil || res.SamplesAdded != 3 {
		t.Fatalf("enroll from unknown %+v %v", res, err)
	}
	en := f.outbox(t)[mqtt.TopicEnrolled]
	last := en[len(en)-1].(mqtt.Enrolled)
	if last.Source != mqtt.SourceUnknown || last.RequestID != "u1" {
		t.Errorf("enrolled event %+v", last)
	}
	if m, _ := f.g.Match(axis(9, 0.015)); !m.Known || m.Name != "Erin" {
		t.Errorf("match after naming the unknown cluster %+v", m)
	}
	for _, u := range f.svc.o.Unknowns.List() {
		if u.ID == id1 {
			t.Errorf("%s still clustered after its enrollment", id1)
		}
	}
}

func TestStatusAndFinetune(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, _ = f.svc.Enroll(ctx, mqtt.EnrollRequest{ID: "r1", Name: "Alice", Images: images(1, 1)})
	f.svc.Observe(pipeline.Event{Camera: "door", Payload: mqtt.Camera{Camera: "door", State: mqtt.CameraDown}})
	st, err := f.svc.Status(ctx, mqtt.StatusRequest{ID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	if st.Device != "pi" || st.People != 1 || st.Samples != 2 || len(st.Cameras) != 1 ||
		st.Cameras[0].Status != mqtt.CameraDown || st.Cameras[0].FPS != 12.35 || st.Cameras[0].Drops != 2 || st.OutboxPending < 2 {
		t.Errorf("status %s", b)
	}
	r, err := f.svc.Finetune(ctx, mqtt.FinetuneRequest{ID: "ft"})
	if err != nil || r.JobID != "job1" || r.State != mqtt.FinetuneStarted {
		t.Errorf("finetune %+v %v", r, err)
	}
	f.svc.o.Finetune = nil
	if _, err := f.svc.Finetune(ctx, mqtt.FinetuneRequest{ID: "ft2"}); codeOf(err) != mqtt.CodeUnavailable {
		t.Errorf("finetune off: %v", err)
	}
}

func TestOutboxOutputAndStoreOutbox(t *testing.T) {
	f := newFixture(t)
	out := NewOutboxOutput(f.st, f.svc, nil)
	evs := []pipeline.Event{
		{Camera: "door", Payload: mqtt.Recognized{Camera: "door", Track: 1, PersonID: "p1", Name: "A", Time: mqtt.At(time.Now())}},
		{Camera: "door", Payload: mqtt.Unknown{Camera: "door", Track: 2}},
		{Camera: "bad/cam", Payload: mqtt.CameraState{Camera: "bad/cam"}}, // cannot be a topic: skipped
	}
	if err := out.WriteEvents(evs); err != nil {
		t.Fatal(err)
	}
	box := NewStoreOutbox(f.st)
	pending, err := box.Pending(10)
	if err != nil || len(pending) != 2 || pending[0].Topic != mqtt.TopicRecognized || pending[1].Topic != mqtt.TopicUnknown {
		t.Fatalf("pending %+v %v", pending, err)
	}
	if pending[0].Seq >= pending[1].Seq {
		t.Error("sequence numbers out of order")
	}
	if err := box.Ack(pending[0].Seq); err != nil {
		t.Fatal(err)
	}
	if box.Len() != 1 {
		t.Errorf("len %d after one ack", box.Len())
	}
	select {
	case <-box.Notify():
	default:
		t.Error("no notification after appending")
	}
	if _, ok := f.svc.seen["p1"]; !ok {
		t.Error("observer did not see the recognition")
	}
}
