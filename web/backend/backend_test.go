package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"testing"
	"time"

	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/web"
)

var ctx = context.Background()

// mqttList is the reply of the MQTT list command, through the router the
// MQTT client uses.
func mqttList(t *testing.T, w *world) mqtt.ListResult {
	t.Helper()
	r := mqtt.NewServiceRouter(w.svc, mqtt.DefaultLimits(), nil)
	rep := r.Dispatch(ctx, mqtt.CmdList, []byte(`{"id":"l","unknown":true}`))
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Result mqtt.ListResult `json:"result"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Result
}

func codeOf(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return ""
}

func TestPeopleAndThumbnails(t *testing.T) {
	w := newWorld(t)
	alice := w.enroll(t, "Alice", photo(1, 0, 0), photo(1, 9, 0))
	bob := w.enroll(t, "Bob", photo(2, 0, 1))
	people, err := w.b.People(ctx)
	if err != nil || len(people) != 2 {
		t.Fatalf("people %+v %v", people, err)
	}
	if people[0].Name != "Alice" || people[0].Samples != 2 || people[0].Thumb == "" {
		t.Errorf("alice %+v", people[0])
	}
	if people[1].Name != "Bob" || people[1].Thumb != "" || people[1].NoThumb == "" {
		t.Errorf("bob %+v", people[1])
	}
	b, err := w.b.SampleThumbnail(ctx, alice, "")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() != 184 {
		t.Fatalf("thumbnail: %v", err)
	}
	if b, err := w.b.SampleThumbnail(ctx, bob, ""); b != nil || err != nil {
		t.Fatalf("bob has a thumbnail: %v", err)
	}
	if b, err := w.b.SampleThumbnail(ctx, "../x", ""); b != nil || err != nil {
		t.Fatalf("bad id: %v", err)
	}
	d, err := w.b.Person(ctx, alice)
	if err != nil || len(d.SampleList) != 2 || !d.SampleList[0].HasCrop {
		t.Fatalf("person %+v %v", d, err)
	}
	if _, err := w.b.Person(ctx, "nobody"); codeOf(err) != mqtt.CodeUnknownPerson {
		t.Fatalf("unknown person: %v", err)
	}

	// Rename and delete go through the service (same checks as MQTT).
	if _, err := w.b.Rename(ctx, alice, "Bob"); codeOf(err) != mqtt.CodeConflict {
		t.Fatalf("rename to a taken name: %v", err)
	}
	if p, err := w.b.Rename(ctx, alice, "Alicia"); err != nil || p.Name != "Alicia" {
		t.Fatalf("rename: %+v %v", p, err)
	}
	// Remove one sample; the last cannot go.
	if err := w.b.RemoveSample(ctx, alice, d.SampleList[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := w.b.RemoveSample(ctx, alice, d.SampleList[1].ID); codeOf(err) != "last_sample" {
		t.Fatalf("last sample: %v", err)
	}
	// "Not this person" on a recognition (camera + track) and on a sample.
	if err := w.b.Feedback(ctx, web.Feedback{PersonID: alice, Camera: "door", Track: 42}); err != nil {
		t.Fatalf("feedback by track: %v", err)
	}
	if err := w.b.Feedback(ctx, web.Feedback{PersonID: alice, Camera: "door", Track: 7}); codeOf(err) != mqtt.CodeInvalidField {
		t.Fatalf("feedback on a forgotten track: %v", err)
	}
	if err := w.b.DeletePerson(ctx, bob); err != nil {
		t.Fatal(err)
	}
	l := mqttList(t, w)
	if len(l.People) != 1 || l.People[0].Name != "Alicia" || l.People[0].Samples != 1 {
		t.Fatalf("mqtt list %+v", l.People)
	}
}

func TestUnknownsEnrollAndDismiss(t *testing.T) {
	w := newWorld(t)
	alice := w.enroll(t, "Alice", photo(1, 0, 0))
	withCrops := w.unknown(t, 20, 6, true)
	without := w.unknown(t, 40, 1, false)
	us, err := w.b.Unknowns(ctx)
	if err != nil || len(us) != 2 {
		t.Fatalf("unknowns %+v %v", us, err)
	}
	byID := map[string]web.Unknown{}
	for _, u := range us {
		byID[u.ID] = u
	}
	// 6 appearances in 4 slots: the 6th went to slot 1, the 5th to 0.
	if u := byID[withCrops]; u.Count != 6 || len(u.Thumbs) != 4 || u.Thumbs[0] != 1 || u.Thumbs[1] != 0 {
		t.Errorf("with crops %+v", u)
	}
	if u := byID[without]; len(u.Thumbs) != 0 || u.NoThumb == "" {
		t.Errorf("without crops %+v", u)
	}
	newest, err := w.b.UnknownThumbnail(ctx, withCrops, -1)
	slot1, _ := w.b.UnknownThumbnail(ctx, withCrops, 1)
	if err != nil || newest == nil || !bytes.Equal(newest, slot1) {
		t.Fatalf("newest thumbnail: %v", err)
	}
	if b, err := w.b.UnknownThumbnail(ctx, without, -1); b != nil || err != nil {
		t.Fatalf("thumbnail without crops: %v", err)
	}

	// Enroll: a new person, the cluster and its crops gone, the MQTT
	// list shows the person.
	res, err := w.b.EnrollUnknown(ctx, withCrops, "Carol", "")
	if err != nil || !res.Created || res.SamplesAdded == 0 {
		t.Fatalf("enroll %+v %v", res, err)
	}
	if b, _ := w.b.UnknownThumbnail(ctx, withCrops, 1); b != nil {
		t.Fatal("crops survived the enrollment")
	}
	l := mqttList(t, w)
	if len(l.People) != 2 || l.People[1].Name != "Carol" || len(l.Unknown) != 1 {
		t.Fatalf("mqtt list %+v", l)
	}
	if _, err := w.b.EnrollUnknown(ctx, withCrops, "Carol2", ""); codeOf(err) != mqtt.CodeUnknownCluster {
		t.Fatalf("enroll twice: %v", err)
	}
	if _, err := w.b.EnrollUnknown(ctx, without, "", ""); codeOf(err) != mqtt.CodeMissingField {
		t.Fatalf("enroll without a name: %v", err)
	}
	// Add to an existing person.
	other := w.unknown(t, 60, 2, true)
	if res, err := w.b.EnrollUnknown(ctx, other, "", alice); err != nil || res.Created || res.Name != "Alice" {
		t.Fatalf("add to alice %+v %v", res, err)
	}
	// Dismiss: gone from the store and from the live clustering.
	if err := w.b.DismissUnknown(ctx, without); err != nil {
		t.Fatal(err)
	}
	if err := w.b.DismissUnknown(ctx, without); codeOf(err) != "unknown_cluster" {
		t.Fatalf("dismiss twice: %v", err)
	}
	if n := len(w.unknowns.List()); n != 0 {
		t.Fatalf("%d clusters still live", n)
	}
}

func TestCamerasModelAndEvents(t *testing.T) {
	w := newWorld(t)
	ch := w.b.Subscribe(ctx)
	w.b.Observe(pipeline.Event{Camera: "yard", Payload: mqtt.Camera{Camera: "yard", State: mqtt.CameraDown, Reason: "stream ended", Time: mqtt.At(time.Now())}})
	w.b.Observe(pipeline.Event{Camera: "door", Payload: mqtt.Recognized{Camera: "door", Track: 3, PersonID: "p", Name: "Alice", Confidence: 0.9, Time: mqtt.At(time.Now())}})
	for _, want := range []string{web.EventCamera, web.EventRecognized} {
		select {
		case e := <-ch:
			if e.Type != want {
				t.Fatalf("event %+v, want %s", e, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
	}
	cams, err := w.b.Cameras(ctx)
	if err != nil || len(cams) != 2 {
		t.Fatalf("cameras %+v %v", cams, err)
	}
	if cams[0].Name != "door" || cams[0].State != web.CameraUp || cams[0].FPS != 9.84 || cams[0].Drops != 3 {
		t.Errorf("door %+v", cams[0])
	}
	if cams[1].State != web.CameraDown || cams[1].Reason != "stream ended" {
		t.Errorf("yard %+v", cams[1])
	}
	if b, err := w.b.CameraFrame(ctx, "door"); err != nil || len(b) < 100 {
		t.Fatalf("frame: %v", err)
	}

	w.enroll(t, "Alice", photo(1, 0, 0), photo(1, 5, 0))
	old := w.head(t, "first", map[string]float64{"unseen_auc": 0.91}, false)
	rejected := w.head(t, "rejected: worse", nil, false)
	cur := w.head(t, "second", map[string]float64{"unseen_auc": 0.95, "before_unseen_auc": 0.91}, true)
	m, err := w.b.Model(ctx)
	if err != nil || m.ActiveHead != cur || len(m.Heads) != 3 || !m.Finetune.Enabled {
		t.Fatalf("model %+v %v", m, err)
	}
	if m.Heads[1].Usable || m.Heads[1].Why == "" {
		t.Errorf("rejected head %+v", m.Heads[1])
	}
	// Roll back skips the rejected version, and the gallery follows.
	if id, err := w.b.RollbackHead(ctx); err != nil || id != old {
		t.Fatalf("rollback to %q: %v", id, err)
	}
	if w.g.ProjectorID() != old {
		t.Fatalf("gallery on %q, want %q", w.g.ProjectorID(), old)
	}
	if err := w.b.ActivateHead(ctx, cur); err != nil || w.g.ProjectorID() != cur {
		t.Fatalf("activate: %v (gallery %q)", err, w.g.ProjectorID())
	}
	if err := w.b.ActivateHead(ctx, "nope"); codeOf(err) != web.CodeNotFound {
		t.Fatalf("activate a missing head: %v", err)
	}
	_ = rejected
	w.ft.mu.Lock()
	w.ft.state = "progress"
	w.ft.mu.Unlock()
	if err := w.b.ActivateHead(ctx, old); codeOf(err) != web.CodeConflict {
		t.Fatalf("activate during a fine-tune: %v", err)
	}
	w.b.ObservePayload("", mqtt.Finetune{JobID: "j", State: mqtt.FinetuneProgress, Progress: 0.4, Epoch: 8, Epochs: 20, Time: mqtt.At(time.Now())})
	if m, _ := w.b.Model(ctx); m.Finetune.Progress != 0.4 || m.Finetune.State != "progress" || m.Finetune.Epoch != 8 {
		t.Fatalf("finetune %+v", m.Finetune)
	}
	if id, err := w.b.StartFinetune(ctx); err != nil || id != "job-1" {
		t.Fatalf("finetune: %q %v", id, err)
	}
	var _ = store.MaxUnknownCrops
}
