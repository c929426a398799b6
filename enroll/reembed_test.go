package enroll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/store"
)

const (
	dlib = "dlib"
	mfn  = "mobilefacenet"
	// mfnDim is the fake target backbone's dimension (MobileFaceNet's).
	mfnDim = 192
)

// cropOf returns a face.CropTemplate crop whose first two bytes carry k
// (what the fake chip cutter and embedder key on) over a texture.
func cropOf(k int) face.Chip {
	n := face.CropSize
	pix := make([]uint8, n*n*3)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			i := (y*n + x) * 3
			pix[i], pix[i+1], pix[i+2] = uint8(x*3+y*5), uint8(x^y), uint8(k*7+x)
		}
	}
	pix[0], pix[1] = uint8(k>>8), uint8(k)
	return face.Chip{Size: n, Pix: pix}
}

// cutChip is the fake ChipFromCrop: a 112x112 chip carrying the crop's key.
func cutChip(crop face.Chip) (face.Chip, error) {
	if crop.Side() != face.CropSize || crop.Validate() != nil {
		return face.Chip{}, fmt.Errorf("not a crop: side %d", crop.Side())
	}
	c := face.Chip{Size: 112, Pix: make([]uint8, 112*112*3)}
	c.Pix[0], c.Pix[1] = crop.Pix[0], crop.Pix[1]
	return c, nil
}

// targetVec is what the fake target backbone embeds crop k to.
func targetVec(k int) []float32 {
	v := make([]float32, mfnDim)
	for j := range v {
		v[j] = float32(math.Sin(float64(k*mfnDim+j))) + 0.01
	}
	return v
}

// targetEmbedder is the fake target backbone.
type targetEmbedder struct {
	t      *testing.T
	calls  int
	chips  int
	onCall func(call int) // runs at the start of each call
}

func (e *targetEmbedder) Embed(chips []face.Chip) ([]face.Embedding, error) {
	e.calls++
	if e.onCall != nil {
		e.onCall(e.calls)
	}
	e.chips += len(chips)
	out := make([]face.Embedding, len(chips))
	for i, c := range chips {
		if c.Side() != 112 {
			return nil, fmt.Errorf("chip of side %d", c.Side())
		}
		out[i] = targetVec(int(c.Pix[0])<<8 | int(c.Pix[1]))
	}
	return out, nil
}

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// rbFixture is a dlib gallery enrolled with crops, ready to move to the
// fake MobileFaceNet:
//
//	Alice: 5 samples with crops, 1 negative without a crop
//	Bob:   4 samples with crops, 1 negative with a crop
//	Carol: 2 samples without crops (enrolled from embeddings)
//	an unknown-face cluster and an active head, both dlib
type rbFixture struct {
	t    *testing.T
	dir  string
	st   *store.Store
	want map[string][]float32 // sample or negative id -> its target vector
	ids  map[string]string    // name -> person id
}

func newRBFixture(t *testing.T) *rbFixture {
	f := &rbFixture{t: t, dir: filepath.Join(t.TempDir(), "db"), want: map[string][]float32{}, ids: map[string]string{}}
	f.st = openStore(t, f.dir)
	t.Cleanup(func() { _ = f.st.Close() })
	w := newWorld(t)
	en := New(f.st, gallery.New(gallery.Options{}), w.finder, w.emb, Options{Backbone: dlib})
	ctx := context.Background()
	k := 0
	for _, p := range []struct {
		name string
		n    int
	}{{"Alice", 5}, {"Bob", 4}} {
		base := w.unit()
		var imgs []Image
		keys := map[string]int{}
		for i := 0; i < p.n; i++ {
			k++
			name := fmt.Sprintf("%s-%d.png", p.name, i)
			imgs = append(imgs, Image{Name: name, Data: w.image(fakeFace{vec: w.near(base, 0.1), quality: 0.8, crop: cropOf(k)})})
			keys[name] = k
		}
		res, err := en.Enroll(ctx, Request{Name: p.name, Images: imgs})
		if err != nil || res.Accepted != p.n {
			t.Fatalf("enroll %s: %+v %v", p.name, res, err)
		}
		for _, ir := range res.Images {
			f.want[ir.SampleID] = targetVec(keys[ir.Name])
		}
		f.ids[p.name] = res.PersonID
	}
	k++
	n, err := en.FeedbackFace("Bob", w.unit(), cropOf(k), store.SourceTrack, "door/1")
	if err != nil || !n.HasCrop {
		t.Fatalf("feedback with crop: %+v %v", n, err)
	}
	f.want[n.ID] = targetVec(k)
	if n, err := en.Feedback("Alice", w.unit(), store.SourceTrack, "door/2"); err != nil || n.HasCrop {
		t.Fatalf("feedback: %+v %v", n, err)
	}
	res, err := en.EnrollEmbeddings(ctx, "Carol", "", []Embedding{{Embedding: w.unit(), Quality: 0.9}, {Embedding: w.unit(), Quality: 0.8}})
	if err != nil {
		t.Fatal(err)
	}
	f.ids["Carol"] = res.PersonID
	u := gallery.NewUnknowns(gallery.UnknownOptions{MaxAge: -1})
	dave := w.unit()
	var ufs []gallery.UnknownFace
	for i := 0; i < 3; i++ {
		ufs = append(ufs, gallery.UnknownFace{Embedding: w.near(dave, 0.1), Quality: 0.9, Time: time.Now(), Camera: "door"})
	}
	if _, _, ok, err := en.ObserveUnknown(u, ufs); err != nil || !ok {
		t.Fatalf("observe unknown: %v %v", ok, err)
	}
	weights, err := head.Identity().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.SaveHead(store.HeadVersion{ID: "h1", Backbone: dlib, Weights: weights, Active: true}); err != nil {
		t.Fatal(err)
	}
	return f
}

// items with crops in the fixture: 9 samples and Bob's negative.
const rbItems = 10

func (f *rbFixture) reopen() {
	f.t.Helper()
	if err := f.st.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.st = openStore(f.t, f.dir)
}

func (f *rbFixture) options(emb Embedder) ReembedOptions {
	return ReembedOptions{Backbone: mfn, ChipFromCrop: cutChip, Embedder: emb, Batch: 3}
}

// staged returns the number of staged vectors.
func (f *rbFixture) staged() int {
	f.t.Helper()
	n := 0
	if err := f.st.View(func(tx *store.Tx) error {
		return tx.EachStaged(func(store.StagedVector) error { n++; return nil })
	}); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// load loads a gallery of one backbone; a mix of dimensions would fail
// gallery.Load (ErrDimension).
func (f *rbFixture) load(backbone string) (*gallery.Gallery, LoadReport) {
	f.t.Helper()
	g := gallery.New(gallery.Options{})
	rep, err := LoadGallery(f.st, g, backbone)
	if err != nil {
		f.t.Fatalf("LoadGallery(%s): %v", backbone, err)
	}
	return g, rep
}

// checkDone checks the final state of a completed re-embedding.
func (f *rbFixture) checkDone() {
	t := f.t
	t.Helper()
	if n := f.staged(); n != 0 {
		t.Fatalf("%d staged vectors left", n)
	}
	err := f.st.View(func(tx *store.Tx) error {
		if s, err := tx.ReembedState(); err != nil || s != nil {
			return fmt.Errorf("state left: %+v %v", s, err)
		}
		seen := 0
		if err := tx.EachSample(func(s store.Sample) error {
			want, ok := f.want[s.ID]
			switch {
			case !ok && s.BackboneID() != dlib:
				return fmt.Errorf("sample %s without crop moved to %s", s.ID, s.Backbone)
			case ok && (s.Backbone != mfn || !reflect.DeepEqual(s.Embedding, want) || !s.HasCrop):
				return fmt.Errorf("sample %s: backbone %q, %d values, crop %v", s.ID, s.Backbone, len(s.Embedding), s.HasCrop)
			case ok:
				seen++
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.EachNegative(func(n store.Negative) error {
			want, ok := f.want[n.ID]
			switch {
			case !ok && n.BackboneID() != dlib:
				return fmt.Errorf("negative %s without crop moved", n.ID)
			case ok && (n.Backbone != mfn || !reflect.DeepEqual(n.Embedding, want)):
				return fmt.Errorf("negative %s: backbone %q", n.ID, n.Backbone)
			case ok:
				seen++
			}
			return nil
		}); err != nil {
			return err
		}
		if seen != rbItems {
			return fmt.Errorf("%d items re-embedded, want %d", seen, rbItems)
		}
		us, err := tx.Unknowns()
		if err != nil || len(us) != 0 {
			return fmt.Errorf("unknown clusters left: %d %v", len(us), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := f.st.ActiveHead(); err != nil || h != nil {
		t.Fatalf("dlib head still active: %+v %v", h, err)
	}
	g, rep := f.load(mfn)
	if rep.People != 2 || rep.Samples != 9 || rep.Negatives != 1 || g.Info().People != 2 {
		t.Fatalf("LoadGallery after the switch: %+v", rep)
	}
	if len(rep.Reembeddable) != 0 || len(rep.NoCrop) != 2 || rep.NoCrop[0].Name != "Alice" || rep.NoCrop[0].Negatives != 1 ||
		rep.NoCrop[1].Name != "Carol" || rep.NoCrop[1].Samples != 2 || rep.NoCrop[1].Current != 0 {
		t.Fatalf("left out after the switch: %+v", rep)
	}
	// The clusters the switch deleted were written back from the gallery.
	if rep.ClustersRestored != 2 {
		t.Fatalf("clusters restored: %d", rep.ClustersRestored)
	}
	err = f.st.View(func(tx *store.Tx) error {
		for _, name := range []string{"Alice", "Bob"} {
			c, err := tx.Clusters(f.ids[name])
			if err != nil || len(c.Clusters) == 0 || len(c.Clusters[0].Centroid) != mfnDim {
				return fmt.Errorf("%s's clusters: %+v %v", name, c, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The unknown clusters of dlib are gone, so nothing is left out.
	if left, err := LoadUnknowns(f.st, gallery.NewUnknowns(gallery.UnknownOptions{MaxAge: -1}), mfn); err != nil || left != 0 {
		t.Fatalf("LoadUnknowns: %d %v", left, err)
	}
	if p, err := NeedsReembed(f.st, mfn); err != nil || p.Needed() {
		t.Fatalf("still needed: %+v %v", p, err)
	}
}

func TestLegacyStoreWithoutCropsLoadsAsDlib(t *testing.T) {
	w := newWorld(t)
	dir := filepath.Join(t.TempDir(), "db")
	st := openStore(t, dir)
	defer func() { _ = st.Close() }()
	// What an edged from before backbone ids wrote: no backbone, no crops.
	var alice, bob store.Person
	err := st.Update(func(tx *store.Tx) error {
		alice, bob = store.Person{Name: "Alice"}, store.Person{Name: "Bob"}
		for _, p := range []*store.Person{&alice, &bob} {
			if err := tx.PutPerson(p); err != nil {
				return err
			}
		}
		for _, s := range []store.Sample{{PersonID: alice.ID, Embedding: w.unit()}, {PersonID: alice.ID, Embedding: w.unit()}, {PersonID: bob.ID, Embedding: w.unit()}} {
			if err := tx.AddSample(&s, nil); err != nil {
				return err
			}
		}
		if err := tx.AddNegative(&store.Negative{PersonID: bob.ID, Embedding: w.unit()}); err != nil {
			return err
		}
		u, err := tx.NewUnknown()
		if err != nil {
			return err
		}
		u.Centroid, u.Count = w.unit(), 1
		u.Samples = []store.UnknownSample{{Embedding: u.Centroid, Quality: 0.9}}
		return tx.PutUnknown(u)
	})
	if err != nil {
		t.Fatal(err)
	}
	weights, _ := head.Identity().Marshal()
	if err := st.SaveHead(store.HeadVersion{ID: "h1", Weights: weights, Active: true}); err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		var b strings.Builder
		err := st.View(func(tx *store.Tx) error {
			ps, _ := tx.People()
			for _, p := range ps {
				ss, _ := tx.Samples(p.ID)
				ns, _ := tx.Negatives(p.ID)
				cs, _ := tx.Clusters(p.ID)
				fmt.Fprintf(&b, "%+v %+v %+v %+v\n", p, ss, ns, cs)
			}
			us, _ := tx.Unknowns()
			hs, _ := tx.Heads()
			rs, err := tx.ReembedState()
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%+v %+v %+v\n", us, hs, rs)
			return tx.EachStaged(func(v store.StagedVector) error { fmt.Fprintf(&b, "%+v\n", v); return nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	// Read as dlib: "" and "dlib" load everything, the head applies.
	for _, bb := range []string{"", dlib} {
		g := gallery.New(gallery.Options{})
		rep, err := LoadGallery(st, g, bb)
		if err != nil || rep.Backbone != dlib || rep.People != 2 || rep.Samples != 3 || len(rep.NoCrop)+len(rep.Reembeddable) != 0 ||
			rep.HeadIgnored != "" || g.ProjectorID() != "h1" || len(rep.Messages()) != 0 {
			t.Fatalf("LoadGallery(%q) = %+v, %v", bb, rep, err)
		}
		if left, err := LoadUnknowns(st, gallery.NewUnknowns(gallery.UnknownOptions{MaxAge: -1}), bb); err != nil || left != 0 {
			t.Fatalf("LoadUnknowns(%q) = %d, %v", bb, left, err)
		}
	}

	// (That wrote the clusters the store lacked; from here on nothing
	// changes it.)
	before := snapshot()

	// The dlib head applies to dlib only.
	if pr, err := ActiveProjector(st, ""); err != nil || pr == nil {
		t.Fatalf("ActiveProjector(dlib) = %v, %v", pr, err)
	}
	if pr, err := ActiveProjector(st, mfn); err != nil || pr != nil {
		t.Fatalf("ActiveProjector(mfn) = %v, %v", pr, err)
	}

	// With MobileFaceNet nobody loads, and everybody is named.
	g := gallery.New(gallery.Options{})
	rep, err := LoadGallery(st, g, mfn)
	if err != nil || rep.People != 0 || g.Info().People != 0 || len(rep.Reembeddable) != 0 {
		t.Fatalf("LoadGallery(mfn) = %+v, %v", rep, err)
	}
	wantNoCrop := []PersonCount{
		{ID: alice.ID, Name: "Alice", From: []string{dlib}, Samples: 2},
		{ID: bob.ID, Name: "Bob", From: []string{dlib}, Samples: 1, Negatives: 1},
	}
	if !reflect.DeepEqual(rep.NoCrop, wantNoCrop) || rep.HeadIgnored != "h1" || rep.HeadBackbone != dlib {
		t.Fatalf("report = %+v", rep)
	}
	msgs := strings.Join(rep.Messages(), "\n")
	for _, want := range []string{
		`Alice: 2 samples have no face crop (enrolled before crops were kept or with store.keep_crops: false)`,
		`re-enroll with edged enroll --name "Alice" PHOTO... (or set model.backbone back to dlib); until then Alice is not recognised`,
		`Bob: 1 sample has no face crop`, `1 negative sample ("this is not Bob" feedback) of the dlib backbone has no face crop`,
		`fine-tuned head h1 was trained on dlib embeddings and is not used with mobilefacenet`,
	} {
		if !strings.Contains(msgs, want) {
			t.Errorf("messages lack %q:\n%s", want, msgs)
		}
	}
	if left, err := LoadUnknowns(st, gallery.NewUnknowns(gallery.UnknownOptions{MaxAge: -1}), mfn); err != nil || left != 1 {
		t.Fatalf("LoadUnknowns(mfn) = %d, %v", left, err)
	}

	// Nothing to re-embed: Reembed says so and writes nothing.
	p, err := NeedsReembed(st, mfn)
	if err != nil || p.Needed() || p.Items != 0 || !reflect.DeepEqual(p.NoCrop, wantNoCrop) {
		t.Fatalf("NeedsReembed = %+v, %v", p, err)
	}
	emb := &targetEmbedder{t: t}
	rr, err := Reembed(context.Background(), st, ReembedOptions{Backbone: mfn, ChipFromCrop: cutChip, Embedder: emb})
	if err != nil || rr.Reembedded != 0 || rr.Skipped != 4 || !reflect.DeepEqual(rr.NoCrop, wantNoCrop) || emb.calls != 0 {
		t.Fatalf("Reembed = %+v, %v (embedder calls %d)", rr, err, emb.calls)
	}
	if !strings.Contains(strings.Join(rr.Messages(), "\n"), `Alice: 2 samples have no face crop`) {
		t.Fatalf("Reembed messages: %q", rr.Messages())
	}
	if after := snapshot(); after != before {
		t.Fatalf("Reembed changed the store (%d bytes of dump before, %d after)", len(before), len(after))
	}

	// Re-enrolling Alice with MobileFaceNet works next to her dlib samples,
	// which stay out of the gallery.
	g = gallery.New(gallery.Options{})
	if _, err := LoadGallery(st, g, mfn); err != nil {
		t.Fatal(err)
	}
	en := New(st, g, nil, nil, Options{Backbone: mfn})
	res, err := en.EnrollEmbeddings(context.Background(), "Alice", "", []Embedding{{Embedding: targetVec(1), Quality: 0.9}})
	if err != nil || res.Samples != 1 || res.Created {
		t.Fatalf("re-enroll Alice: %+v %v", res, err)
	}
	if m, err := g.Match(targetVec(1)); err != nil || m.PersonID != alice.ID {
		t.Fatalf("match after re-enrollment: %+v %v", m, err)
	}
	rep, err = LoadGallery(st, gallery.New(gallery.Options{}), mfn)
	if err != nil || rep.People != 1 || rep.Samples != 1 || rep.NoCrop[0].Current != 1 ||
		!strings.Contains(rep.Messages()[0], "meanwhile Alice is recognised from 1 other sample") {
		t.Fatalf("after re-enrollment: %+v %v", rep, err)
	}
	// Removing her only MobileFaceNet sample takes her out of the gallery
	// (her dlib samples remain in the store).
	ss, _ := st.Samples(alice.ID)
	var mfnSample string
	for _, s := range ss {
		if s.Backbone == mfn {
			mfnSample = s.ID
		}
	}
	if _, err := en.RemoveSample(alice.ID, mfnSample); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.PersonClusters(alice.ID); ok {
		t.Fatal("Alice still in the gallery without samples of its backbone")
	}
	if ss, _ := st.Samples(alice.ID); len(ss) != 2 {
		t.Fatalf("Alice has %d samples", len(ss))
	}
	// An unknown cluster of another backbone cannot be enrolled.
	if _, err := en.EnrollUnknown(context.Background(), "unknown-1", "Dave", ""); !errors.Is(err, ErrUnknownCluster) {
		t.Fatalf("enroll a dlib unknown cluster with mobilefacenet: %v", err)
	}
}

func TestReembedResumesAfterCancel(t *testing.T) {
	f := newRBFixture(t)
	p, err := NeedsReembed(f.st, mfn)
	if err != nil || !p.Needed() || p.Items != rbItems || p.InProgress != nil || len(p.Reembeddable) != 2 || len(p.NoCrop) != 2 {
		t.Fatalf("NeedsReembed = %+v, %v", p, err)
	}

	// Cancelled during the second batch: the two batches embedded are
	// staged, nothing is switched.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	emb := &targetEmbedder{t: t, onCall: func(call int) {
		if call == 2 {
			cancel()
		}
	}}
	var progress []int
	opts := f.options(emb)
	opts.Progress = func(done, total int) {
		if total != rbItems {
			t.Errorf("progress total %d", total)
		}
		progress = append(progress, done)
	}
	_, err = Reembed(ctx, f.st, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Reembed: %v", err)
	}
	if n := f.staged(); n != 6 || !reflect.DeepEqual(progress, []int{0, 3, 6}) {
		t.Fatalf("staged %d, progress %v", n, progress)
	}
	// Neither gallery mixes: dlib still has everyone, MobileFaceNet nobody.
	if _, rep := f.load(dlib); rep.People != 3 || rep.Samples != 11 {
		t.Fatalf("dlib gallery mid-way: %+v", rep)
	}
	if _, rep := f.load(mfn); rep.People != 0 {
		t.Fatalf("mobilefacenet gallery mid-way: %+v", rep)
	}
	p, err = NeedsReembed(f.st, mfn)
	if err != nil || !p.Needed() || p.InProgress == nil || p.InProgress.Target != mfn {
		t.Fatalf("NeedsReembed mid-way = %+v, %v", p, err)
	}

	// Resumed: only the rest is embedded.
	emb2 := &targetEmbedder{t: t}
	rep, err := Reembed(context.Background(), f.st, f.options(emb2))
	if err != nil {
		t.Fatal(err)
	}
	if emb2.chips != rbItems-6 || rep.Reembedded != rbItems || rep.Resumed != 6 || rep.Skipped != 3 ||
		rep.UnknownsDeleted != 1 || !reflect.DeepEqual(rep.HeadsDeactivated, []string{"h1"}) {
		t.Fatalf("resumed Reembed = %+v (embedded %d)", rep, emb2.chips)
	}
	msgs := strings.Join(rep.Messages(), "\n")
	for _, want := range []string{"re-embedded 10 samples with mobilefacenet", "(6 staged by an interrupted run)",
		`Carol: 2 samples have no face crop`, `re-enroll with edged enroll --name "Carol" PHOTO...`,
		"deleted 1 unknown-face cluster", "deactivated fine-tuned head h1"} {
		if !strings.Contains(msgs, want) {
			t.Errorf("messages lack %q:\n%s", want, msgs)
		}
	}
	f.checkDone()
	// Done: a second run has nothing to do.
	emb3 := &targetEmbedder{t: t}
	if rep, err := Reembed(context.Background(), f.st, f.options(emb3)); err != nil || rep.Reembedded != 0 || emb3.calls != 0 {
		t.Fatalf("second Reembed = %+v, %v", rep, err)
	}
}

var errCrash = errors.New("simulated crash")

func TestReembedSurvivesCrashes(t *testing.T) {
	f := newRBFixture(t)

	// Crash once everything is staged, before the switch.
	emb := &targetEmbedder{t: t}
	opts := f.options(emb)
	opts.beforeSwitch = func() error { return errCrash }
	if _, err := Reembed(context.Background(), f.st, opts); !errors.Is(err, errCrash) {
		t.Fatalf("Reembed: %v", err)
	}
	f.reopen()
	if n := f.staged(); n != rbItems || emb.chips != rbItems {
		t.Fatalf("staged %d, embedded %d", n, emb.chips)
	}
	if _, rep := f.load(mfn); rep.People != 0 {
		t.Fatalf("mobilefacenet gallery before the switch: %+v", rep)
	}

	// Crash in the middle of the switch (two operations per transaction).
	emb2 := &targetEmbedder{t: t}
	opts = f.options(emb2)
	txns := 0
	opts.switchOps = 2
	opts.afterSwitchTxn = func() error {
		if txns++; txns == 2 {
			return errCrash
		}
		return nil
	}
	if _, err := Reembed(context.Background(), f.st, opts); !errors.Is(err, errCrash) {
		t.Fatalf("Reembed: %v", err)
	}
	f.reopen()
	if emb2.calls != 0 {
		t.Fatalf("staged items embedded again: %d calls", emb2.calls)
	}
	// Half switched: each gallery loads only its own backbone's vectors
	// (a mix would fail gallery.Load with ErrDimension).
	_, repM := f.load(mfn)
	_, repD := f.load(dlib)
	if repM.Samples+repM.Negatives != 4 || repD.Samples+repD.Negatives+4 != 11+2 {
		t.Fatalf("mid-switch: mobilefacenet %+v, dlib %+v", repM, repD)
	}
	if n := f.staged(); n != rbItems-4 {
		t.Fatalf("staged after a partial switch: %d", n)
	}

	// Resumed: the switch completes without embedding anything.
	emb3 := &targetEmbedder{t: t}
	rep, err := Reembed(context.Background(), f.st, f.options(emb3))
	if err != nil || emb3.calls != 0 || rep.Reembedded != rbItems-4 {
		t.Fatalf("resumed Reembed = %+v, %v (calls %d)", rep, err, emb3.calls)
	}
	f.checkDone()
}

func TestReembedSwitchSplitsBigTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a thousand samples")
	}
	st := newTestStore(t)
	// 1000 samples whose new vectors (192 values, ~1.2 KB of JSON each)
	// do not fit one Badger transaction (15% of the 8 MiB memtable).
	const people, per = 10, 100
	crop := cropOf(0)
	want := map[string]int{}
	for p := 0; p < people; p++ {
		err := st.Update(func(tx *store.Tx) error {
			ps := store.Person{Name: fmt.Sprintf("p%d", p)}
			if err := tx.PutPerson(&ps); err != nil {
				return err
			}
			for i := 0; i < per; i++ {
				k := p*per + i + 1
				crop.Pix[0], crop.Pix[1] = uint8(k>>8), uint8(k)
				var buf bytes.Buffer
				if err := png.Encode(&buf, crop.Image()); err != nil {
					return err
				}
				v := make([]float32, 128)
				v[0] = 1
				s := store.Sample{PersonID: ps.ID, Embedding: v}
				if err := tx.AddSampleWith(&s, store.Images{Crop: buf.Bytes()}); err != nil {
					return err
				}
				want[s.ID] = k
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	opts := ReembedOptions{Backbone: mfn, ChipFromCrop: cutChip, Embedder: &targetEmbedder{t: t}, Batch: 64}
	txns := 0
	opts.afterSwitchTxn = func() error { txns++; return nil }
	rep, err := Reembed(context.Background(), st, opts)
	if err != nil || rep.Reembedded != people*per {
		t.Fatalf("Reembed = %+v, %v", rep, err)
	}
	if txns < 2 {
		t.Fatalf("the switch took %d transaction(s); the test no longer exercises ErrTxnTooBig", txns)
	}
	err = st.View(func(tx *store.Tx) error {
		return tx.EachSample(func(s store.Sample) error {
			if s.Backbone != mfn || !reflect.DeepEqual(s.Embedding, targetVec(want[s.ID])) {
				return fmt.Errorf("sample %s not switched", s.ID)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switch of %d samples in %d transactions", people*per, txns)
}

func TestReembedOptionsAndBadCrops(t *testing.T) {
	st := newTestStore(t)
	for _, o := range []ReembedOptions{{}, {Backbone: mfn}, {Backbone: mfn, ChipFromCrop: cutChip}} {
		if _, err := Reembed(context.Background(), st, o); err == nil {
			t.Fatalf("Reembed accepted %+v", o)
		}
	}
	// A crop of the wrong size (stored by hand) is reported like a
	// missing one; a failing chip cutter stops Reembed.
	var p store.Person
	err := st.Update(func(tx *store.Tx) error {
		p = store.Person{Name: "Eve"}
		if err := tx.PutPerson(&p); err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, face.Chip{Size: 20, Pix: make([]uint8, 20*20*3)}.Image()); err != nil {
			return err
		}
		if err := tx.AddSampleWith(&store.Sample{PersonID: p.ID, Embedding: []float32{1, 2}}, store.Images{Crop: buf.Bytes()}); err != nil {
			return err
		}
		buf.Reset()
		if err := png.Encode(&buf, cropOf(1).Image()); err != nil {
			return err
		}
		return tx.AddSampleWith(&store.Sample{PersonID: p.ID, Embedding: []float32{1, 2}}, store.Images{Crop: buf.Bytes()})
	})
	if err != nil {
		t.Fatal(err)
	}
	failing := func(face.Chip) (face.Chip, error) { return face.Chip{}, errors.New("gocv says no") }
	if _, err := Reembed(context.Background(), st, ReembedOptions{Backbone: mfn, ChipFromCrop: failing, Embedder: &targetEmbedder{t: t}}); err == nil || !strings.Contains(err.Error(), "gocv says no") {
		t.Fatalf("failing ChipFromCrop: %v", err)
	}
	rep, err := Reembed(context.Background(), st, ReembedOptions{Backbone: mfn, ChipFromCrop: cutChip, Embedder: &targetEmbedder{t: t}})
	if err != nil || rep.Reembedded != 1 || rep.Skipped != 1 || len(rep.NoCrop) != 1 || rep.NoCrop[0].Samples != 1 || rep.NoCrop[0].Current != 1 {
		t.Fatalf("Reembed = %+v, %v", rep, err)
	}
}

func TestEnrollKeepsCrops(t *testing.T) {
	w := newWorld(t)
	st := newTestStore(t)
	en, _ := w.enroller(st, Options{Backbone: mfn})
	crop := cropOf(42)
	bad := face.Chip{Size: 100, Pix: make([]uint8, 100*100*3)}
	res, err := en.Enroll(context.Background(), Request{Name: "Gus", Images: []Image{
		{Name: "a.png", Data: w.image(fakeFace{vec: w.unit(), quality: 0.8, crop: crop})},
		{Name: "b.png", Data: w.image(fakeFace{vec: w.unit(), quality: 0.8})},
		{Name: "c.png", Data: w.image(fakeFace{vec: w.unit(), quality: 0.8, crop: bad})},
	}})
	if err != nil || res.Accepted != 3 {
		t.Fatalf("enroll: %+v %v", res, err)
	}
	err = st.View(func(tx *store.Tx) error {
		for i, wantCrop := range []bool{true, false, false} {
			s, err := tx.Sample(res.PersonID, res.Images[i].SampleID)
			if err != nil {
				return err
			}
			b, err := tx.Crop(res.PersonID, s.ID)
			if err != nil || s.HasCrop != wantCrop || (b != nil) != wantCrop || s.Backbone != mfn {
				return fmt.Errorf("sample %d: has crop %v, %d bytes, backbone %q, %v", i, s.HasCrop, len(b), s.Backbone, err)
			}
			if b == nil {
				continue
			}
			got, err := decodeCrop(b)
			if err != nil || !bytes.Equal(got.Pix, crop.Pix) {
				return fmt.Errorf("the crop does not round-trip exactly: %v", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// DropCrops (store.keep_crops: false) keeps none.
	en2, _ := w.enroller(st, Options{Backbone: mfn, DropCrops: true})
	res, err = en2.Enroll(context.Background(), Request{Name: "Hal", Images: []Image{
		{Name: "a.png", Data: w.image(fakeFace{vec: w.unit(), quality: 0.8, crop: crop})}}})
	if err != nil {
		t.Fatal(err)
	}
	if ss, _ := st.Samples(res.PersonID); len(ss) != 1 || ss[0].HasCrop {
		t.Fatalf("DropCrops kept a crop: %+v", ss)
	}
}
