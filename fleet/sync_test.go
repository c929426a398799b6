package fleet

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/internal/metrics"
	"github.com/edged-dev/edged/store"
)

// deadline bounds each wait of the in-memory tests; they return as soon as
// the condition holds (well under a second here), the bound only matters
// on a loaded machine (10 s was once too short with other tests running).
const deadline = 30 * time.Second

func sampleIDs(ss []store.Sample) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID)
	}
	slices.Sort(out)
	return out
}

// hasPerson reports whether d lists id with name and exactly the samples.
func hasPerson(d *device, id, name string, samples []string) bool {
	p, ss, ok := d.person(id)
	return ok && p.Name == name && slices.Equal(sampleIDs(ss), samples)
}

func gone(d *device, id string) bool {
	_, _, ok := d.person(id)
	return !ok
}

func TestEnrollRenameDeleteAcrossDevices(t *testing.T) {
	b := newMemBroker()
	a, bb, c := newDevice(t, "a", Options{}), newDevice(t, "b", Options{}), newDevice(t, "c", Options{})
	for _, d := range []*device{a, bb, c} {
		d.start(b.client())
	}
	id := a.enroll("Alice", 1, 3)
	_, want, _ := a.person(id)
	ids := sampleIDs(want)
	for _, d := range []*device{bb, c} {
		waitFor(t, deadline, d.name+" has Alice", func() bool { return hasPerson(d, id, "Alice", ids) })
	}
	// B's gallery, loaded from its store, holds A's embeddings.
	if _, err := enroll.LoadGallery(bb.st, bb.g, "mobilefacenet"); err != nil {
		t.Fatal(err)
	}
	m, err := bb.g.Match(want[0].Embedding)
	if err != nil || m.PersonID != id {
		t.Fatalf("B does not recognise A's sample: %+v %v", m, err)
	}
	_, got, _ := bb.person(id)
	for i := range got {
		if !slices.Equal(got[i].Embedding, want[i].Embedding) || got[i].Backbone != "mobilefacenet" {
			t.Fatalf("sample %s differs", got[i].ID)
		}
	}
	if ch := bb.changeList(); len(ch) == 0 || ch[0].Kind != ChangeCreated || ch[0].Origin != "a" {
		t.Fatalf("B's changes: %+v", ch)
	}

	// Rename on B, a second enrollment on C: everyone has both.
	if _, err := bb.en.Rename(id, "Alicia"); err != nil {
		t.Fatal(err)
	}
	bb.s.Changed(id)
	waitFor(t, deadline, "rename reaches A", func() bool { p, _, _ := a.person(id); return p.Name == "Alicia" })
	c.enrollTo("", id, 1, 2)
	_, all, _ := c.person(id)
	if len(all) != 5 {
		t.Fatalf("C has %d samples", len(all))
	}
	for _, d := range []*device{a, bb, c} {
		waitFor(t, deadline, d.name+" has 5 samples", func() bool { return hasPerson(d, id, "Alicia", sampleIDs(all)) })
	}

	// Delete on A: gone everywhere.
	if _, err := a.en.Delete(id); err != nil {
		t.Fatal(err)
	}
	a.s.Changed(id)
	for _, d := range []*device{bb, c} {
		waitFor(t, deadline, d.name+" deleted", func() bool { return gone(d, id) })
	}
	st, err := c.s.Status()
	if err != nil || st.PeopleDeleted != 1 || st.PeopleLive != 0 || len(st.Members) != 2 {
		t.Fatalf("status: %+v %v", st, err)
	}
	var buf bytes.Buffer
	if err := st.WriteText(&buf); err != nil || !strings.Contains(buf.String(), "Alicia") || !strings.Contains(buf.String(), "deleted") {
		t.Fatalf("status text: %v\n%s", err, buf.String())
	}
	t.Logf("\n%s", buf.String())
}

func TestCatchUpAfterDowntime(t *testing.T) {
	b := newMemBroker()
	a, c := newDevice(t, "a", Options{}), newDevice(t, "c", Options{})
	a.start(b.client())
	c.start(b.client())
	id := a.enroll("Bob", 2, 2)
	waitFor(t, deadline, "C has Bob", func() bool { _, _, ok := c.person(id); return ok })

	c.stop() // C is off while A renames and enrolls more
	if _, err := a.en.Rename(id, "Robert"); err != nil {
		t.Fatal(err)
	}
	a.s.Changed(id)
	a.enroll("Robert", 2, 2)
	id2 := a.enroll("Carol", 3, 1)
	_, want, _ := a.person(id)

	c.open()
	c.start(b.client())
	waitFor(t, deadline, "C caught up", func() bool {
		return hasPerson(c, id, "Robert", sampleIDs(want)) && !gone(c, id2)
	})
}

func TestLocalChangesSurviveBrokerOutage(t *testing.T) {
	b := newMemBroker()
	a, c := newDevice(t, "a", Options{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}), newDevice(t, "c", Options{})
	ta := b.client()
	a.start(ta)
	c.start(b.client())
	ta.setDown(true)
	id := a.enroll("Dora", 4, 2)
	// A restarts while still cut off: the queue is in the store.
	time.Sleep(50 * time.Millisecond)
	a.stop()
	a.open()
	a.start(ta)
	time.Sleep(50 * time.Millisecond)
	if !gone(c, id) {
		t.Fatal("C got Dora through a cut connection")
	}
	ta.setDown(false)
	waitFor(t, deadline, "C has Dora after the outage", func() bool { _, _, ok := c.person(id); return ok })
}

func TestConcurrentRenamesConverge(t *testing.T) {
	b := newMemBroker()
	a, bb, c := newDevice(t, "a", Options{}), newDevice(t, "b", Options{}), newDevice(t, "c", Options{})
	ta, tb := b.client(), b.client()
	a.start(ta)
	bb.start(tb)
	c.start(b.client())
	id := a.enroll("Eve", 5, 1)
	for _, d := range []*device{bb, c} {
		waitFor(t, deadline, d.name+" has Eve", func() bool { _, _, ok := d.person(id); return ok })
	}
	// Partition A and B, rename on both, heal.
	ta.setDown(true)
	tb.setDown(true)
	if _, err := a.en.Rename(id, "Eve A"); err != nil {
		t.Fatal(err)
	}
	a.s.Changed(id)
	if _, err := bb.en.Rename(id, "Eve B"); err != nil {
		t.Fatal(err)
	}
	bb.s.Changed(id)
	time.Sleep(20 * time.Millisecond)
	ta.setDown(false)
	tb.setDown(false)
	name := func(d *device) string { p, _, _ := d.person(id); return p.Name }
	waitFor(t, deadline, "one name everywhere", func() bool {
		n := name(a)
		return (n == "Eve A" || n == "Eve B") && name(bb) == n && name(c) == n
	})
	st, _ := a.s.Status()
	st2, _ := bb.s.Status()
	if st.ConflictsResolved+st2.ConflictsResolved == 0 {
		t.Error("no conflict counted")
	}
}

func TestForgedRecordRefused(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	b := newMemBroker()
	reg := metrics.NewRegistry()
	a := newDevice(t, "a", Options{Key: key})
	c := newDevice(t, "c", Options{Key: key, Metrics: reg})
	a.start(b.client())
	c.start(b.client())
	id := a.enroll("Frank", 6, 1)
	waitFor(t, deadline, "C has Frank", func() bool { _, _, ok := c.person(id); return ok })

	// A device with another key renames Frank and enrolls a stranger.
	evil := newDevice(t, "evil", Options{Key: bytes.Repeat([]byte{8}, 32)})
	evil.start(b.client())
	waitFor(t, deadline, "evil refused Frank", func() bool { return gone(evil, id) && evil.s.m.refused.With("forged").Value() > 0 })
	evil.enroll("Mallory", 7, 1)
	// A plaintext record and garbage on Frank's topic.
	forger := b.client()
	topic := c.s.Topics().Person(id)
	_ = forger.Publish(topic, []byte(`{"v":1,"fleet":"home","id":"`+id+`","name":{"value":"Pwned","hlc":"9.0.x"}}`), true)
	_ = forger.Publish(topic, []byte("EDF1 not really"), true)
	waitFor(t, deadline, "refusals counted", func() bool {
		return c.s.m.refused.With("forged").Value() >= 2
	})
	if p, _, _ := c.person(id); p.Name != "Frank" {
		t.Fatalf("forged rename applied: %q", p.Name)
	}
	if ps, _ := c.st.People(); len(ps) != 1 {
		t.Fatalf("C has %d people, want Frank only", len(ps))
	}
	// The retained copy is repaired by a device that has the record.
	waitFor(t, deadline, "retained record repaired", func() bool {
		b.mu.Lock()
		p := b.retained[topic]
		b.mu.Unlock()
		_, err := c.s.decodeRecord(topic, id, p)
		return err == nil
	})
	var buf bytes.Buffer
	if err := reg.WriteText(&buf); err != nil || !strings.Contains(buf.String(), `edged_fleet_records_refused_total{reason="forged"}`) {
		t.Fatalf("metric missing: %v\n%s", err, buf.String())
	}
}

func TestOversizeAndCorruptNeverCrash(t *testing.T) {
	b := newMemBroker()
	c := newDevice(t, "c", Options{MaxRecordBytes: 8 << 10})
	c.start(b.client())
	x := b.client()
	base := c.s.Topics()
	for i, p := range [][]byte{
		bytes.Repeat([]byte("x"), 9<<10),
		[]byte("{"),
		[]byte(`{"v":1,"fleet":"home","id":"Pc","name":{"value":"A","hlc":"1.0.a"},"samples":[{"id":"s","hlc":"1.0.a","vecs":[{"backbone":"mobilefacenet","hlc":"1.0.a","data":"AAAA!"}]}]}`),
		[]byte(`{"v":2}`),
		[]byte(`{"v":1,"fleet":"other","id":"Pe","name":{"value":"A","hlc":"1.0.a"}}`),
		[]byte(`{"v":1,"fleet":"home","id":"Pf","name":{"value":"A","hlc":"99999999999999.0.a"}}`),
		[]byte(`null`),
	} {
		_ = x.Publish(base.Person("P"+string(rune('a'+i))), p, true)
		_ = x.Publish(base.Member("m"+string(rune('a'+i))), p, true)
	}
	waitFor(t, deadline, "all refused", func() bool {
		v := 0.0
		for _, r := range []string{"oversize", "corrupt", "invalid", "version", "clock_skew"} {
			v += c.s.m.refused.With(r).Value()
		}
		return v >= 14
	})
	for _, r := range []string{"oversize", "corrupt", "version", "clock_skew", "invalid"} {
		if c.s.m.refused.With(r).Value() == 0 {
			t.Errorf("no %s refusal", r)
		}
	}
	if ps, _ := c.st.People(); len(ps) != 0 {
		t.Fatalf("people from garbage: %v", ps)
	}
}

func TestNameClashSameEverywhere(t *testing.T) {
	b := newMemBroker()
	a, bb := newDevice(t, "a", Options{}), newDevice(t, "b", Options{})
	ta, tb := b.client(), b.client()
	ta.setDown(true)
	tb.setDown(true)
	a.start(ta)
	bb.start(tb)
	id1 := a.enroll("Gus", 8, 1)
	id2 := bb.enroll("Gus", 9, 1)
	ta.setDown(false)
	tb.setDown(false)
	keeper, other := min(id1, id2), max(id1, id2)
	for _, d := range []*device{a, bb} {
		waitFor(t, deadline, d.name+" has both", func() bool {
			p1, _, ok1 := d.person(keeper)
			p2, _, ok2 := d.person(other)
			return ok1 && ok2 && p1.Name == "Gus" && p2.Name == "Gus ("+other[len(other)-6:]+")"
		})
	}
	// The suffix is local: the fleet's name stays "Gus" for both.
	time.Sleep(50 * time.Millisecond)
	st, _ := a.s.Status()
	for _, p := range st.People {
		if p.Name != "Gus" {
			t.Fatalf("fleet name changed: %+v", p)
		}
	}
}

func pngCrop(t testing.TB, v uint8) []byte {
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := range img.Pix {
		img.Pix[i] = v
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOtherBackbone(t *testing.T) {
	b := newMemBroker()
	// A (mobilefacenet) shares crops; B (dlib) re-embeds them; C (dlib)
	// without crops reports the person and stores nothing.
	a := newDevice(t, "a", Options{ShareCrops: true})
	var reembedded int
	bb := newDevice(t, "b", Options{Backbone: "dlib", ShareCrops: true, KeepCrops: true,
		Reembed: func(_ context.Context, crops [][]byte) ([][]float32, error) {
			out := make([][]float32, len(crops))
			for i := range crops {
				out[i] = make([]float32, 128)
				out[i][0] = float32(len(crops[i]))
				out[i][1] = 1
			}
			reembedded += len(crops)
			return out, nil
		}})
	bb.g = gallery.New(gallery.Options{})
	c := newDevice(t, "c", Options{Backbone: "dlib"})
	for _, d := range []*device{a, bb, c} {
		d.start(b.client())
	}
	// Enroll on A with crops (as the enroller keeps them).
	var id string
	err := a.st.Update(func(tx *store.Tx) error {
		p := store.Person{Name: "Hana"}
		if err := tx.PutPerson(&p); err != nil {
			return err
		}
		id = p.ID
		for i := 0; i < 2; i++ {
			s := store.Sample{PersonID: p.ID, Embedding: face(10, i), Backbone: "mobilefacenet", Source: store.SourceFile}
			if err := tx.AddSampleWith(&s, store.Images{Crop: pngCrop(t, uint8(i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a.s.Changed(id)
	waitFor(t, deadline, "B re-embedded Hana", func() bool {
		_, ss, ok := bb.person(id)
		return ok && len(ss) == 2 && ss[0].Backbone == "dlib" && ss[0].HasCrop
	})
	// B's dlib vectors went back into the record: C (dlib, no crops) can
	// use them without any crop.
	waitFor(t, deadline, "C has Hana from B's vectors", func() bool {
		_, ss, ok := c.person(id)
		return ok && len(ss) == 2 && ss[0].Backbone == "dlib"
	})
	// A keeps its own mobilefacenet vectors.
	_, ss, _ := a.person(id)
	if len(ss) != 2 || ss[0].Backbone != "mobilefacenet" {
		t.Fatalf("A's samples changed: %+v", ss)
	}
	if reembedded != 2 {
		t.Fatalf("re-embedded %d crops", reembedded)
	}
}

func TestOtherBackboneWithoutCropsIsReported(t *testing.T) {
	b := newMemBroker()
	a := newDevice(t, "a", Options{})
	c := newDevice(t, "c", Options{Backbone: "dlib"})
	a.start(b.client())
	c.start(b.client())
	id := a.enroll("Ivan", 11, 2)
	waitFor(t, deadline, "C reported Ivan", func() bool { return c.s.m.skipped.Value() == 1 })
	if !gone(c, id) {
		t.Fatal("C stored a person it cannot recognise")
	}
	st, _ := c.s.Status()
	if len(st.People) != 1 || st.People[0].Skipped != "mobilefacenet" || st.People[0].Usable != 0 {
		t.Fatalf("status: %+v", st.People)
	}
	// Reported once: more samples of the same backbone say nothing new.
	a.enroll("Ivan", 11, 1)
	time.Sleep(100 * time.Millisecond)
	if c.s.m.skipped.Value() != 1 {
		t.Fatalf("reported %v times", c.s.m.skipped.Value())
	}
}

func TestSampleCapEvictsOldest(t *testing.T) {
	b := newMemBroker()
	a, c := newDevice(t, "a", Options{MaxSamples: 3}), newDevice(t, "c", Options{MaxSamples: 3})
	a.start(b.client())
	c.start(b.client())
	id := a.enroll("Jo", 12, 2)
	time.Sleep(5 * time.Millisecond)
	a.enroll("Jo", 12, 2)
	waitFor(t, deadline, "both at the cap, same samples", func() bool {
		_, sa, _ := a.person(id)
		_, sc, ok := c.person(id)
		return ok && len(sa) == 3 && slices.Equal(sampleIDs(sa), sampleIDs(sc))
	})
}

func TestStatusAndRestartKeepsClock(t *testing.T) {
	b := newMemBroker()
	a := newDevice(t, "a", Options{})
	a.start(b.client())
	id := a.enroll("Kim", 13, 1)
	waitFor(t, deadline, "published", func() bool {
		st, _ := a.s.Status()
		return len(st.People) == 1 && st.PendingPublish == 0
	})
	st, _ := a.s.Status()
	v1 := st.People[0].Version
	last := a.s.clock.Last()
	a.stop()
	a.open()
	// The offline view of a stopped daemon.
	off, err := ReadStatus(a.st, "mobilefacenet")
	if err != nil || off.Running || len(off.People) != 1 || off.People[0].ID != id {
		t.Fatalf("ReadStatus: %+v %v", off, err)
	}
	a.opts.Now = func() time.Time { return time.UnixMilli(1000) } // the clock went back
	a.start(b.client())
	if _, err := a.en.Rename(id, "Kimberly"); err != nil {
		t.Fatal(err)
	}
	a.s.Changed(id)
	waitFor(t, deadline, "renamed record", func() bool {
		st, _ := a.s.Status()
		return len(st.People) == 1 && st.People[0].Name == "Kimberly"
	})
	st, _ = a.s.Status()
	h, _ := ParseHLC(st.People[0].Version)
	if !h.After(last) {
		t.Fatalf("clock went back across the restart: %s after %s (was %s)", h, last, v1)
	}
}

func TestSampleRemovalAndNegativesPropagate(t *testing.T) {
	b := newMemBroker()
	a, c := newDevice(t, "a", Options{}), newDevice(t, "c", Options{})
	a.start(b.client())
	c.start(b.client())
	id := a.enroll("Lea", 14, 3)
	_, ss, _ := a.person(id)
	waitFor(t, deadline, "C has Lea", func() bool { _, cs, _ := c.person(id); return len(cs) == 3 })
	if _, err := a.en.RemoveSample(id, ss[0].ID); err != nil {
		t.Fatal(err)
	}
	neg, err := a.en.Feedback(id, face(99, 0), store.SourceTrack, "cam/7")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, deadline, "removal and negative on C", func() bool {
		_, cs, _ := c.person(id)
		var ns []store.Negative
		_ = c.st.View(func(tx *store.Tx) (err error) { ns, err = tx.Negatives(id); return err })
		return len(cs) == 2 && !slices.Contains(sampleIDs(cs), ss[0].ID) && len(ns) == 1 && ns[0].ID == neg.ID &&
			slices.Equal(ns[0].Embedding, neg.Embedding)
	})
}

func TestTombstonesExpireAndTopicsAreCleared(t *testing.T) {
	b := newMemBroker()
	opts := Options{TombstoneTTL: 300 * time.Millisecond}
	a, c := newDevice(t, "a", opts), newDevice(t, "c", opts)
	a.start(b.client())
	c.start(b.client())
	id := a.enroll("Max", 15, 1)
	waitFor(t, deadline, "C has Max", func() bool { return !gone(c, id) })
	if _, err := a.en.Delete(id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, deadline, "deleted on C", func() bool { return gone(c, id) })
	topic := a.s.Topics().Person(id)
	waitFor(t, deadline, "retained record cleared and forgotten everywhere", func() bool {
		b.mu.Lock()
		_, kept := b.retained[topic]
		b.mu.Unlock()
		sa, _ := a.s.Status()
		sc, _ := c.s.Status()
		return !kept && len(sa.People) == 0 && len(sc.People) == 0
	})
}

// TestNameSwap: two people swap names on one device; the other converges
// without a clash left over.
func TestNameSwap(t *testing.T) {
	b := newMemBroker()
	a, c := newDevice(t, "a", Options{}), newDevice(t, "c", Options{})
	ta := b.client()
	a.start(ta)
	c.start(b.client())
	p1 := a.enroll("Xena", 16, 1)
	p2 := a.enroll("Yuri", 17, 1)
	waitFor(t, deadline, "C has both", func() bool { return hasPerson(c, p1, "Xena", sampleIDsOf(a, p1)) && !gone(c, p2) })
	ta.setDown(true)
	for _, r := range [][2]string{{p1, "Tmp"}, {p2, "Xena"}, {p1, "Yuri"}} {
		if _, err := a.en.Rename(r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	ta.setDown(false)
	name := func(d *device, id string) string { p, _, _ := d.person(id); return p.Name }
	waitFor(t, deadline, "C swapped too", func() bool { return name(c, p1) == "Yuri" && name(c, p2) == "Xena" })
}

func sampleIDsOf(d *device, id string) []string { _, ss, _ := d.person(id); return sampleIDs(ss) }
