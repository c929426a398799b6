package enroll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/store"
)

func TestEnrollRefusesWithReasonsAndStoresTheRest(t *testing.T) {
	w := newWorld(t)
	st := newTestStore(t)
	en, g := w.enroller(st, Options{})
	alice := w.unit()
	images := []Image{
		{Name: "good.jpg", Data: w.good(w.near(alice, 0.1))},
		{Name: "blurry.jpg", Data: w.image(fakeFace{vec: alice, quality: 0.05, issue: "blurry"})},
		{Name: "two.jpg", Data: w.image(
			fakeFace{vec: alice, quality: 0.8, box: image.Rect(40, 40, 110, 110)},
			fakeFace{vec: w.unit(), quality: 0.8, box: image.Rect(90, 90, 160, 160)})},
		{Name: "nobody.jpg", Data: w.image()},
		{Name: "garbage.jpg", Data: []byte("not an image at all")},
		{Name: "good2.jpg", Data: w.good(w.near(alice, 0.1))},
		// A group photo where Alice is clearly the subject: enrolled.
		{Name: "group.jpg", Data: w.image(
			fakeFace{vec: w.near(alice, 0.1), quality: 0.8, box: image.Rect(60, 60, 140, 140)},
			fakeFace{vec: w.unit(), quality: 0.8, box: image.Rect(0, 0, 30, 30)})},
	}
	res, err := en.Enroll(context.Background(), Request{Name: " Alice ", Images: images})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Name != "Alice" || res.Accepted != 3 || res.Refused != 4 || res.Samples != 3 || res.Clusters != 1 {
		t.Fatalf("result = %+v", res)
	}
	want := map[string]string{"good.jpg": "", "blurry.jpg": "poor_quality", "two.jpg": "several_faces",
		"nobody.jpg": "no_face", "garbage.jpg": "bad_image", "good2.jpg": "", "group.jpg": ""}
	for _, ir := range res.Images {
		if ir.Code != want[ir.Name] || ir.Accepted != (want[ir.Name] == "") {
			t.Errorf("%s: %+v", ir.Name, ir)
		}
		if ir.Accepted && ir.SampleID == "" {
			t.Errorf("%s: no sample id", ir.Name)
		}
		if !ir.Accepted && ir.Reason == "" {
			t.Errorf("%s: refused without a reason", ir.Name)
		}
	}
	if !strings.Contains(res.Images[1].Reason, "blurry") {
		t.Errorf("quality reason %q does not carry the detector's issue", res.Images[1].Reason)
	}
	// Stored: person, samples with their sources, clusters; no chips.
	err = st.View(func(tx *store.Tx) error {
		p, err := tx.PersonByName("alice")
		if err != nil {
			return err
		}
		ss, err := tx.Samples(p.ID)
		if err != nil || len(ss) != 3 || ss[0].Source != store.SourceFile || ss[0].Ref != "good.jpg" || ss[0].HasChip {
			t.Errorf("samples = %+v, %v", ss, err)
		}
		cl, err := tx.Clusters(p.ID)
		if err != nil || len(cl.Clusters) != 1 || cl.Clusters[0].Count != 3 {
			t.Errorf("clusters = %+v, %v", cl, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// And matched.
	if m, _ := g.Match(w.near(alice, 0.1)); !m.Known || m.PersonID != res.PersonID || m.Name != "Alice" {
		t.Fatalf("match = %+v", m)
	}
	// The same name again adds samples to the same person.
	res2, err := en.Enroll(context.Background(), Request{Name: "ALICE", Images: []Image{{Name: "more.jpg", Data: w.good(w.near(alice, 0.1))}}})
	if err != nil || res2.Created || res2.PersonID != res.PersonID || res2.Samples != 4 {
		t.Fatalf("second enrollment = %+v, %v", res2, err)
	}
	// By id, too.
	res3, err := en.Enroll(context.Background(), Request{PersonID: res.PersonID, Images: []Image{{Name: "x.jpg", Data: w.good(w.near(alice, 0.1))}}})
	if err != nil || res3.PersonID != res.PersonID || res3.Samples != 5 {
		t.Fatalf("by id = %+v, %v", res3, err)
	}
}

func TestEnrollErrorsHaveStableCodes(t *testing.T) {
	w := newWorld(t)
	st := newTestStore(t)
	en, _ := w.enroller(st, Options{})
	ctx := context.Background()
	bob := w.unit()
	blurry := func() Image {
		return Image{Name: "b.jpg", Data: w.image(fakeFace{vec: bob, quality: 0.01, issue: "blurry"})}
	}
	cases := []struct {
		name  string
		req   Request
		code  string
		is    []error
		count int // refused images reported
	}{
		{"no images", Request{Name: "Bob"}, "bad_request", []error{ErrBadRequest}, 0},
		{"no name", Request{Images: []Image{blurry()}}, "bad_request", []error{ErrBadRequest}, 0},
		{"bad name", Request{Name: "a\x01b", Images: []Image{blurry()}}, "invalid_name", []error{ErrInvalidName}, 0},
		{"unknown person", Request{PersonID: "01NOBODY", Images: []Image{{Name: "g", Data: w.good(bob)}}}, "unknown_person", []error{ErrUnknownPerson}, 0},
		{"all poor", Request{Name: "Bob", Images: []Image{blurry(), blurry()}}, "poor_quality", []error{ErrPoorQuality, ErrNoUsableFace}, 2},
		{"all undecodable", Request{Name: "Bob", Images: []Image{{Name: "x", Data: []byte{0xff, 0xd8, 0xff}}, {Name: "y"}}}, "bad_image", []error{ErrBadImage, ErrNoUsableFace}, 2},
		{"mixed failures", Request{Name: "Bob", Images: []Image{blurry(), {Name: "e", Data: w.image()}}}, "no_face", []error{ErrNoUsableFace}, 2},
		{"all or nothing", Request{Name: "Bob", AllOrNothing: true, Images: []Image{{Name: "g", Data: w.good(bob)}, blurry()}}, "poor_quality", []error{ErrPoorQuality}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := en.Enroll(ctx, c.req)
			if err == nil {
				t.Fatalf("no error, result %+v", res)
			}
			if CodeOf(err) != c.code {
				t.Fatalf("code %q (%v), want %q", CodeOf(err), err, c.code)
			}
			for _, target := range c.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
			if res.Refused != c.count {
				t.Errorf("refused %d, want %d", res.Refused, c.count)
			}
		})
	}
	// None of them stored anything.
	if ps, _ := st.People(); len(ps) != 0 {
		t.Fatalf("failed requests stored %d people", len(ps))
	}
	// A name taken through rename, an embedder failure.
	w.emb.fail = true
	if _, err := en.Enroll(ctx, Request{Name: "Bob", Images: []Image{{Name: "g", Data: w.good(bob)}}}); CodeOf(err) != "internal" {
		t.Fatalf("embedder failure: %v", err)
	}
	if CodeOf(nil) != "" || CodeOf(errors.New("x")) != "internal" {
		t.Fatal("CodeOf")
	}
	// Too many images.
	en2 := New(st, gallery.New(gallery.Options{}), w.finder, w.emb, Options{MaxImages: 1})
	if _, err := en2.Enroll(ctx, Request{Name: "Bob", Images: []Image{blurry(), blurry()}}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("too many images: %v", err)
	}
}

func TestEnrollEventsAndChipsInTheSameTransaction(t *testing.T) {
	w := newWorld(t)
	st := newTestStore(t)
	events := func(r Result) []store.OutboxEvent {
		b, _ := json.Marshal(map[string]any{"person_id": r.PersonID, "name": r.Name, "samples": r.Accepted})
		return []store.OutboxEvent{{Topic: "events/enrolled", Payload: b}}
	}
	en, _ := w.enroller(st, Options{KeepChips: true, Events: events})
	res, err := en.Enroll(context.Background(), Request{Name: "Carol", Images: []Image{{Name: "c.jpg", Data: w.good(w.unit())}}})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := st.PendingEvents(0, 0)
	if err != nil || len(evs) != 1 || evs[0].Topic != "events/enrolled" || !bytes.Contains(evs[0].Payload, []byte(res.PersonID)) {
		t.Fatalf("events = %+v, %v", evs, err)
	}
	var chip []byte
	_ = st.View(func(tx *store.Tx) (err error) { chip, err = tx.Chip(res.PersonID, res.Images[0].SampleID); return err })
	if !bytes.HasPrefix(chip, []byte("\x89PNG")) {
		t.Fatalf("chip not stored as PNG: %q", chip[:min(8, len(chip))])
	}
	// A failed enrollment appends no event.
	if _, err := en.Enroll(context.Background(), Request{Name: "Carol", Images: []Image{{Name: "x", Data: w.image()}}}); err == nil {
		t.Fatal("no error")
	}
	if n, _ := st.OutboxLen(); n != 1 {
		t.Fatalf("outbox has %d events", n)
	}
}

func TestUnknownToPersonAndService(t *testing.T) {
	w := newWorld(t)
	st := newTestStore(t)
	u := gallery.NewUnknowns(gallery.UnknownOptions{MaxAge: -1})
	g := gallery.New(gallery.Options{Threshold: 0.4})
	en := New(st, g, nil, nil, Options{Unknowns: u})
	dave := w.unit()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	faces := func(at time.Time) []gallery.UnknownFace {
		var fs []gallery.UnknownFace
		for i := 0; i < 3; i++ {
			fs = append(fs, gallery.UnknownFace{Embedding: w.near(dave, 0.15), Quality: 0.9, Time: at, Camera: "door"})
		}
		return fs
	}
	id, created, ok, err := en.ObserveUnknown(u, faces(t0))
	if err != nil || !ok || !created || id.ID != "unknown-1" {
		t.Fatalf("first sighting: %+v %v %v %v", id.ID, created, ok, err)
	}
	id, created, ok, err = en.ObserveUnknown(u, faces(t0.Add(time.Hour)))
	if err != nil || !ok || created || id.Count != 2 {
		t.Fatalf("second sighting: %+v %v %v %v", id.ID, created, ok, err)
	}
	// Stored, and loadable after a restart.
	u2 := gallery.NewUnknowns(gallery.UnknownOptions{MaxAge: -1})
	if _, err := LoadUnknowns(st, u2, ""); err != nil || len(u2.List()) != 1 || u2.List()[0].Count != 2 {
		t.Fatalf("LoadUnknowns: %v %+v", err, u2.List())
	}
	// Name it.
	res, err := en.EnrollUnknown(context.Background(), "unknown-1", "Dave", "")
	if err != nil || !res.Created || res.Samples != 6 || res.Unknown != "unknown-1" {
		t.Fatalf("EnrollUnknown = %+v, %v", res, err)
	}
	if us, _ := st.Unknowns(); len(us) != 0 {
		t.Fatalf("unknown cluster left in the store: %+v", us)
	}
	if len(u.List()) != 0 {
		t.Fatal("unknown cluster left in memory")
	}
	if m, _ := g.Match(w.near(dave, 0.1)); !m.Known || m.Name != "Dave" {
		t.Fatalf("Dave not recognised: %+v", m)
	}
	if _, err := en.EnrollUnknown(context.Background(), "unknown-1", "Dave", ""); !errors.Is(err, ErrUnknownCluster) {
		t.Fatalf("enrolling it twice: %v", err)
	}
	// Rename, feedback, delete keep store and gallery together.
	if _, err := en.Rename("Dave", "David"); err != nil {
		t.Fatal(err)
	}
	if m, _ := g.Match(w.near(dave, 0.1)); m.Name != "David" {
		t.Fatalf("gallery name = %q", m.Name)
	}
	if _, err := en.Rename("David", ""); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("empty rename: %v", err)
	}
	look := w.near(dave, 0.3)
	if _, err := en.Feedback("David", look, store.SourceTrack, "door/7"); err != nil {
		t.Fatal(err)
	}
	if m, _ := g.Match(w.near(look, 0.02)); m.Known {
		t.Fatalf("look-alike still accepted after feedback: %+v", m)
	}
	if _, err := en.Feedback("David", []float32{1, 2}, "", ""); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("feedback with a bad embedding: %v", err)
	}
	if _, err := en.Feedback("nobody", look, "", ""); !errors.Is(err, ErrUnknownPerson) {
		t.Fatalf("feedback for nobody: %v", err)
	}
	// After a restart the negative is loaded back.
	g2 := gallery.New(gallery.Options{Threshold: 0.4})
	if _, err := LoadGallery(st, g2, ""); err != nil {
		t.Fatal(err)
	}
	if in := g2.Info(); in.People != 1 || in.Negatives != 1 || in.Samples != 6 {
		t.Fatalf("reloaded gallery: %+v", in)
	}
	if _, err := en.Delete("David"); err != nil {
		t.Fatal(err)
	}
	if m, _ := g.Match(w.near(dave, 0.1)); m.Known {
		t.Fatalf("deleted person matched: %+v", m)
	}
	if _, err := en.Delete("David"); !errors.Is(err, ErrUnknownPerson) {
		t.Fatalf("second delete: %v", err)
	}
	// Enrolling embeddings of the wrong size is refused before the store.
	if _, err := en.EnrollEmbeddings(context.Background(), "Eve", "", []Embedding{{Embedding: []float32{1}}}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("bad embedding: %v", err)
	}
}

func TestLoadGalleryUsesTheActiveHead(t *testing.T) {
	w := newWorld(t)
	st := newTestStore(t)
	en, _ := w.enroller(st, Options{})
	if _, err := en.EnrollEmbeddings(context.Background(), "Frank", "", []Embedding{{Embedding: w.unit(), Quality: 0.9}}); err != nil {
		t.Fatal(err)
	}
	weights, err := head.Identity().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveHead(store.HeadVersion{ID: "h1", Weights: weights, Active: true}); err != nil {
		t.Fatal(err)
	}
	g := gallery.New(gallery.Options{})
	if _, err := LoadGallery(st, g, ""); err != nil {
		t.Fatal(err)
	}
	if g.ProjectorID() != "h1" || g.Info().People != 1 {
		t.Fatalf("projector %q, %+v", g.ProjectorID(), g.Info())
	}
	// A corrupt head is an error, not a silent identity.
	if err := st.SaveHead(store.HeadVersion{ID: "h2", Weights: []byte("junk"), Active: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadGallery(st, gallery.New(gallery.Options{}), ""); err == nil {
		t.Fatal("corrupt head loaded")
	}
}

func TestMainFace(t *testing.T) {
	box := func(x, y, s int) image.Rectangle { return image.Rect(x, y, x+s, y+s) }
	cases := []struct {
		name  string
		boxes []image.Rectangle
		idx   int
		ok    bool
	}{
		{"one", []image.Rectangle{box(0, 0, 10)}, 0, true},
		{"centred subject, big face at the border", []image.Rectangle{box(0, 0, 100), box(70, 70, 100)}, 1, true},
		{"two alike", []image.Rectangle{box(20, 70, 60), box(120, 70, 60)}, 0, false},
		{"big and small", []image.Rectangle{box(10, 10, 30), box(60, 60, 90)}, 1, true},
	}
	for _, c := range cases {
		faces := make([]faceBox, len(c.boxes))
		for i, b := range c.boxes {
			faces[i] = faceBox(b)
		}
		idx, ok := MainFace(toFaces(faces), 200, 200, 2)
		if idx != c.idx || ok != c.ok {
			t.Errorf("%s: got %d %v, want %d %v", c.name, idx, ok, c.idx, c.ok)
		}
	}
	if _, ok := MainFace(nil, 10, 10, 2); ok {
		t.Error("no faces")
	}
	// ratio <= 1: always the most prominent.
	if i, ok := MainFace(toFaces([]faceBox{faceBox(box(20, 70, 60)), faceBox(box(120, 70, 61))}), 200, 200, 1); !ok || i != 1 {
		t.Errorf("ratio 1: %d %v", i, ok)
	}
}

func TestRemoveSample(t *testing.T) {
	w := newWorld(t)
	st := newTestStore(t)
	en, g := w.enroller(st, Options{})
	alice, bob := w.unit(), w.unit()
	// One of Alice's "samples" is really Bob.
	res, err := en.EnrollEmbeddings(context.Background(), "Alice", "", []Embedding{
		{Embedding: w.near(alice, 0.1), Quality: 0.9}, {Embedding: w.near(alice, 0.1), Quality: 0.9}, {Embedding: bob, Quality: 0.9}})
	if err != nil || res.Clusters != 2 {
		t.Fatalf("enroll: %+v %v", res, err)
	}
	if m, _ := g.Match(w.near(bob, 0.05)); !m.Known || m.Name != "Alice" {
		t.Fatalf("before: %+v", m)
	}
	ss, _ := st.Samples(res.PersonID)
	removed, err := en.RemoveSample(res.PersonID, ss[2].ID)
	if err != nil || removed.ID != ss[2].ID {
		t.Fatalf("RemoveSample: %+v %v", removed, err)
	}
	if m, _ := g.Match(w.near(bob, 0.05)); m.Known {
		t.Fatalf("Bob still matches Alice: %+v", m)
	}
	var cl store.Clusters
	_ = st.View(func(tx *store.Tx) (err error) { cl, err = tx.Clusters(res.PersonID); return err })
	if len(cl.Clusters) != 1 || cl.Clusters[0].Count != 2 {
		t.Fatalf("stored clusters not recomputed: %+v", cl)
	}
	if _, err := en.RemoveSample(res.PersonID, "nope"); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("unknown sample: %v", err)
	}
	if _, err := en.RemoveSample(res.PersonID, ss[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := en.RemoveSample(res.PersonID, ss[1].ID); !errors.Is(err, ErrLastSample) {
		t.Fatalf("last sample: %v", err)
	}
	if _, err := en.RemoveSample("nobody", ss[1].ID); !errors.Is(err, ErrUnknownPerson) {
		t.Fatalf("unknown person: %v", err)
	}
}
