package fleet

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// recordGen makes random copies of one person's record as devices would
// write them: a shared pool of sample ids (each with its add metadata),
// random subsets, embeddings of two backbones, renames, deletes, sample
// removals and cluster sets, with timestamps from three devices. Now and
// then a copy breaks the rules (same id with other metadata, same HLC with
// another value) to check that merges stay deterministic anyway.
type recordGen struct {
	r       *rand.Rand
	devices []string
	pool    []Sample
}

func newRecordGen(seed uint64) *recordGen {
	g := &recordGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), devices: []string{"a", "b", "c"}}
	for i := 0; i < 12; i++ {
		g.pool = append(g.pool, Sample{
			ID:      fmt.Sprintf("S%02d", i),
			HLC:     g.hlc(),
			Quality: float32(g.r.IntN(100)) / 100,
			Source:  "file",
			Created: time.UnixMilli(1_700_000_000_000 + int64(g.r.IntN(1e6))),
		})
	}
	return g
}

func (g *recordGen) hlc() HLC {
	return HLC{Wall: 1_700_000_000_000 + int64(g.r.IntN(20)), Logical: uint32(g.r.IntN(3)), Device: g.devices[g.r.IntN(len(g.devices))]}
}

func (g *recordGen) vec(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(g.r.IntN(7)) - 3
	}
	return v
}

func (g *recordGen) record() *Record {
	r := &Record{V: RecordVersion, Fleet: "home", ID: "P1",
		Name:    Name{Value: []string{"Alice", "Alicia", "Al"}[g.r.IntN(3)], HLC: g.hlc(), Prev: HLC{Wall: int64(g.r.IntN(2)), Device: "a"}},
		Created: time.UnixMilli(1_600_000_000_000 + int64(g.r.IntN(5)))}
	if g.r.IntN(4) == 0 {
		r.Deleted = &Tomb{HLC: g.hlc(), Expires: int64(g.r.IntN(3))}
	}
	for _, s := range g.pool {
		if g.r.IntN(2) == 0 {
			continue
		}
		s.Crop = g.r.IntN(2) == 0
		if g.r.IntN(20) == 0 {
			s.Quality += 0.5 // a broken writer: same id, other metadata
		}
		for _, bb := range []string{"dlib", "mobilefacenet"} {
			if g.r.IntN(2) == 0 || len(s.Vecs) == 0 && bb == "mobilefacenet" {
				s.Vecs = append(s.Vecs, Vec{Backbone: bb, HLC: g.hlc(), Data: g.vec(4)})
			}
		}
		if g.r.IntN(3) == 0 {
			r.Negatives = append(r.Negatives, s)
		} else {
			r.Samples = append(r.Samples, s)
		}
	}
	for i := 0; i < g.r.IntN(4); i++ {
		r.Removed = append(r.Removed, Tomb{ID: g.pool[g.r.IntN(len(g.pool))].ID, HLC: g.hlc(), Expires: 5})
	}
	for _, bb := range []string{"dlib", "mobilefacenet"} {
		if g.r.IntN(3) == 0 {
			r.Clusters = append(r.Clusters, Clusters{Backbone: bb, HLC: g.hlc(),
				Items: []Cluster{{Centroid: g.vec(4), Spread: 0.1, Count: 2, Samples: []string{"S01"}}}})
		}
	}
	return r
}

func mustJSON(t *testing.T, r *Record) string {
	t.Helper()
	b, err := marshalRecord(Normalize(r))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func foldAll(rs []*Record) *Record {
	var acc *Record
	for _, r := range rs {
		acc = Merge(acc, r)
	}
	return acc
}

// TestMergeLaws: commutative, associative, idempotent, inflationary, and
// the normal form survives a JSON round trip.
func TestMergeLaws(t *testing.T) {
	for seed := uint64(1); seed <= 400; seed++ {
		g := newRecordGen(seed)
		a, b, c := g.record(), g.record(), g.record()
		ab, ba := Merge(a, b), Merge(b, a)
		if x, y := mustJSON(t, ab), mustJSON(t, ba); x != y {
			t.Fatalf("seed %d: not commutative:\n%s\n%s", seed, x, y)
		}
		l, r := Merge(Merge(a, b), c), Merge(a, Merge(b, c))
		if x, y := mustJSON(t, l), mustJSON(t, r); x != y {
			t.Fatalf("seed %d: not associative:\n%s\n%s", seed, x, y)
		}
		if x, y := mustJSON(t, Merge(a, a)), mustJSON(t, a); x != y {
			t.Fatalf("seed %d: not idempotent:\n%s\n%s", seed, x, y)
		}
		if !Equal(Merge(ab, a), ab) || !Equal(Merge(ab, b), ab) {
			t.Fatalf("seed %d: merging a part back changes the join", seed)
		}
		enc, _ := marshalRecord(Normalize(a))
		back, err := unmarshalRecord(enc)
		if err != nil || !Equal(back, a) {
			t.Fatalf("seed %d: JSON round trip: %v", seed, err)
		}
		// Arguments are not changed.
		before := mustJSON(t, a)
		_ = Merge(a, c)
		if mustJSON(t, a) != before {
			t.Fatalf("seed %d: Merge changed its argument", seed)
		}
	}
}

// TestMergeAnyOrderAnyDuplication: the copies of a person's record
// arriving in any order, each any number of times, give one state.
func TestMergeAnyOrderAnyDuplication(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		g := newRecordGen(seed)
		var copies []*Record
		for i := 0; i < 2+g.r.IntN(6); i++ {
			copies = append(copies, g.record())
		}
		want := mustJSON(t, foldAll(copies))
		for trial := 0; trial < 10; trial++ {
			var seq []*Record
			for _, c := range copies {
				for n := 1 + g.r.IntN(3); n > 0; n-- {
					seq = append(seq, c)
				}
			}
			g.r.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
			// Also merge in a random tree shape, not only left to right.
			got := mustJSON(t, mergeTree(g.r, seq))
			if got != want {
				t.Fatalf("seed %d trial %d: order/duplication changed the state:\n got %s\nwant %s", seed, trial, got, want)
			}
		}
	}
}

func mergeTree(r *rand.Rand, rs []*Record) *Record {
	switch len(rs) {
	case 0:
		return nil
	case 1:
		return Normalize(rs[0])
	}
	cut := 1 + r.IntN(len(rs)-1)
	return Merge(mergeTree(r, rs[:cut]), mergeTree(r, rs[cut:]))
}

func h(wall int64, dev string) HLC { return HLC{Wall: wall, Device: dev} }

func vec1(bb string, at HLC, x float32) Vec { return Vec{Backbone: bb, HLC: at, Data: []float32{x, 1}} }

// TestMergeRules spells out the rules of docs/fleet.md on small examples.
func TestMergeRules(t *testing.T) {
	base := func() *Record {
		return &Record{V: 1, Fleet: "home", ID: "P", Name: Name{Value: "Alice", HLC: h(10, "a")},
			Samples: []Sample{{ID: "s1", HLC: h(10, "a"), Vecs: []Vec{vec1("mfn", h(10, "a"), 1)}}}}
	}
	t.Run("concurrent renames: the later HLC wins, the device id breaks a tie", func(t *testing.T) {
		a, b := base(), base()
		a.Name = Name{Value: "Alicia", HLC: h(20, "a")}
		b.Name = Name{Value: "Ali", HLC: h(20, "b")}
		if got := Merge(a, b).Name.Value; got != "Ali" {
			t.Fatalf("got %q", got)
		}
		b.Name.HLC = h(19, "b")
		if got := Merge(b, a).Name.Value; got != "Alicia" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("samples: add-wins union, embeddings merged by backbone", func(t *testing.T) {
		a, b := base(), base()
		a.Samples = append(a.Samples, Sample{ID: "s2", HLC: h(20, "a"), Vecs: []Vec{vec1("mfn", h(20, "a"), 2)}})
		b.Samples[0].Vecs = append(b.Samples[0].Vecs, vec1("dlib", h(30, "b"), 3))
		m := Merge(a, b)
		if len(m.Samples) != 2 || len(m.Samples[0].Vecs) != 2 {
			t.Fatalf("got %+v", m.Samples)
		}
		if m.HLC != h(30, "b") || m.Origin != "b" {
			t.Fatalf("version %v origin %q", m.HLC, m.Origin)
		}
	})
	t.Run("a removal wins over the older add, not over a newer one", func(t *testing.T) {
		a, b := base(), base()
		b.Removed = []Tomb{{ID: "s1", HLC: h(15, "b"), Expires: 99}}
		if m := Merge(a, b); len(m.Samples) != 0 {
			t.Fatalf("removed sample kept: %+v", m.Samples)
		}
		a.Samples[0].HLC = h(16, "a") // (a re-add with a new id would be the real case)
		if m := Merge(a, b); len(m.Samples) != 1 {
			t.Fatal("newer add lost")
		}
	})
	t.Run("delete vs concurrent enroll: what was added after the delete survives", func(t *testing.T) {
		a, b := base(), base()
		a.Deleted = &Tomb{HLC: h(20, "a"), Expires: 99}
		if m := Merge(a, b); m.Alive() {
			t.Fatal("deleted person alive")
		}
		b.Samples = append(b.Samples, Sample{ID: "s9", HLC: h(25, "b"), Vecs: []Vec{vec1("mfn", h(25, "b"), 9)}})
		m := Merge(a, b)
		if !m.Alive() || len(m.Samples) != 1 || m.Samples[0].ID != "s9" {
			t.Fatalf("got alive=%v %+v", m.Alive(), m.Samples)
		}
	})
	t.Run("expired tombstones are compacted, the record is garbage when nothing is left", func(t *testing.T) {
		a := base()
		a.Deleted = &Tomb{HLC: h(20, "a"), Expires: 100}
		if _, garbage := Compact(a, 99); garbage {
			t.Fatal("garbage before expiry")
		}
		if _, garbage := Compact(a, 100); !garbage {
			t.Fatal("not garbage after expiry")
		}
	})
}

func TestRecordValidate(t *testing.T) {
	l := Limits{MaxRecordBytes: 1 << 20, MaxSamples: 2, MaxNegatives: 2, MaxTombs: 2, MaxDim: 8, MaxVecs: 2}
	good := func() *Record {
		return &Record{V: 1, Fleet: "home", ID: "P1", Name: Name{Value: "Alice", HLC: h(10, "a")},
			Samples: []Sample{{ID: "s1", HLC: h(10, "a"), Vecs: []Vec{vec1("mfn", h(10, "a"), 1)}}}}
	}
	if err := good().Validate(l); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(r *Record){
		"version":      func(r *Record) { r.V = 2 },
		"id":           func(r *Record) { r.ID = "a/b" },
		"name":         func(r *Record) { r.Name.Value = " " },
		"hlc":          func(r *Record) { r.Name.HLC = HLC{} },
		"nan":          func(r *Record) { r.Samples[0].Vecs[0].Data[0] = float32(nan()) },
		"dim":          func(r *Record) { r.Samples[0].Vecs[0].Data = make([]float32, 9) },
		"no vecs":      func(r *Record) { r.Samples[0].Vecs = nil },
		"dup sample":   func(r *Record) { r.Negatives = append(r.Negatives, r.Samples[0]) },
		"many samples": func(r *Record) { r.Samples = append(r.Samples, make([]Sample, 4)...) },
		"tomb id":      func(r *Record) { r.Removed = []Tomb{{HLC: h(1, "a")}} },
	} {
		r := good()
		mut(r)
		if err := r.Validate(l); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func nan() float64 { var z float64; return z / z }

func TestHLC(t *testing.T) {
	now := time.UnixMilli(1000)
	c := NewClock("a", func() time.Time { return now }, time.Minute)
	t1 := c.Now()
	t2 := c.Now()
	if !t2.After(t1) || t2.Wall != 1000 || t2.Logical != 1 {
		t.Fatalf("%v %v", t1, t2)
	}
	now = time.UnixMilli(500) // the system clock went back
	if t3 := c.Now(); !t3.After(t2) {
		t.Fatalf("went back: %v", t3)
	}
	if err := c.Observe(HLC{Wall: 5000, Logical: 7, Device: "b"}); err != nil {
		t.Fatal(err)
	}
	if t4 := c.Now(); t4.Wall != 5000 || t4.Logical != 8 || t4.Device != "a" {
		t.Fatalf("after observe: %v", t4)
	}
	if err := c.Observe(HLC{Wall: 500 + 2*60_000, Device: "b"}); err == nil {
		t.Fatal("far future accepted")
	}
	// Restart: a new clock restored from the persisted last value.
	last := c.Last()
	c2 := NewClock("a", func() time.Time { return time.UnixMilli(10) }, time.Minute)
	c2.Restore(last)
	if t5 := c2.Now(); !t5.After(last) {
		t.Fatalf("not monotonic across restart: %v <= %v", t5, last)
	}
	// Text form.
	for _, x := range []HLC{t1, {Wall: 1, Logical: 0, Device: "dev.with.dots"}} {
		b, _ := json.Marshal(x)
		var y HLC
		if err := json.Unmarshal(b, &y); err != nil || y != x {
			t.Fatalf("%s: %v %v", b, y, err)
		}
	}
	if _, err := ParseHLC("12.x.a"); err == nil {
		t.Fatal("bad hlc parsed")
	}
}
