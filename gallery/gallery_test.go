package gallery

import (
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestStrangerBetweenTwoPeopleIsUnknown(t *testing.T) {
	rng := newRNG(1)
	a := unit(rng, testDim)
	b := near(rng, a, 0.5) // two people who look somewhat alike
	g := New(Options{})
	if err := g.Load([]Person{person(rng, "A", a, 1, 0), person(rng, "B", b, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	thr := g.Threshold()
	if thr < 0.3 || thr > 0.45 {
		t.Fatalf("fitted threshold %.3f for 2 people is outside the measured range", thr)
	}
	mid := between(a, b) // 0.25 from both: near enough for either alone
	cases := []struct {
		name   string
		probe  []float32
		known  bool
		person string
		reason string
	}{
		{"A itself", a, true, "A", ""},
		{"near A", near(rng, a, 0.15), true, "A", ""},
		{"near B", near(rng, b, 0.2), true, "B", ""},
		{"stranger between A and B", mid, false, "", ReasonAmbiguous},
		{"stranger far from everyone", unit(rng, testDim), false, "", ReasonFar},
		{"just beyond the threshold", near(rng, a, thr+0.02), false, "", ReasonFar},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := g.Match(scaled(c.probe, 1.3))
			if err != nil {
				t.Fatal(err)
			}
			if m.Known != c.known || (c.known && m.PersonID != c.person) || m.Reason != c.reason {
				t.Fatalf("got %+v", m)
			}
			if m.Confidence < 0 || m.Confidence > 1 {
				t.Fatalf("confidence %v outside [0,1]", m.Confidence)
			}
			if c.known && m.Confidence < 0.5 {
				t.Fatalf("accepted with confidence %.3f", m.Confidence)
			}
			if !c.known && m.Confidence > 0.5 {
				t.Fatalf("refused with confidence %.3f", m.Confidence)
			}
			if math.Abs(m.Margin-(m.SecondDistance-m.Distance)) > 1e-9 {
				t.Fatalf("margin %v != %v - %v", m.Margin, m.SecondDistance, m.Distance)
			}
		})
	}
	// The midpoint is near enough to A to be accepted if B were not there:
	// the margin, not the distance, keeps the stranger out.
	solo := New(Options{})
	if err := solo.Load([]Person{person(rng, "A", a, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	if m, _ := solo.Match(mid); !m.Known || m.SecondDistance != noSecond {
		t.Fatalf("midpoint against A alone: %+v", m)
	}
}

func TestConfidenceFallsWithDistance(t *testing.T) {
	c := calibrate(DefaultOptions(), 50, 3, nil, nil)
	prev := 2.0
	for d := 0.0; d <= 1.2; d += 0.01 {
		conf := c.confidence(d, noSecond)
		if conf < 0 || conf > 1 || math.IsNaN(conf) {
			t.Fatalf("confidence(%.2f) = %v", d, conf)
		}
		if conf > prev+1e-12 {
			t.Fatalf("confidence rises from %v to %v at %.2f", prev, conf, d)
		}
		prev = conf
	}
	if c.confidence(0.1, noSecond) < 0.99 || c.confidence(0.7, noSecond) > 0.01 {
		t.Fatalf("confidence not decisive: %v at 0.1, %v at 0.7", c.confidence(0.1, noSecond), c.confidence(0.7, noSecond))
	}
	// A tie with a second person halves it at best.
	if conf := c.confidence(0.2, 0.2); conf > 0.5 {
		t.Fatalf("tie gives %v", conf)
	}
}

func TestThresholdFitsGallerySize(t *testing.T) {
	o := DefaultOptions()
	// The prior alone: more people or more shots per cluster = stricter.
	prev := 1.0
	for _, n := range []int{1, 10, 100, 1000, 100000} {
		c := calibrate(o, n, 1, nil, nil)
		if c.Threshold > prev || !c.Fitted {
			t.Fatalf("threshold for %d people = %.3f, not below %.3f", n, c.Threshold, prev)
		}
		prev = c.Threshold
	}
	if calibrate(o, 50, 5, nil, nil).Threshold >= calibrate(o, 50, 1, nil, nil).Threshold {
		t.Fatal("5-shot galleries must get a stricter threshold than 1-shot ones")
	}
	// Far below the 1:1 verification threshold (0.4365) at any size.
	if th := calibrate(o, 2, 1, nil, nil).Threshold; th >= 0.4365 {
		t.Fatalf("threshold for 2 people %.3f is not below the 1:1 threshold", th)
	}
	// Measured leave-one-out distances pull the fit towards the data.
	near := make([]float64, 200)
	for i := range near {
		near[i] = 0.30 + 0.01*float64(i%5)
	}
	if c := calibrate(o, 50, 1, near, nil); c.Threshold > calibrate(o, 50, 1, nil, nil).Threshold-0.03 || c.Points != 200 {
		t.Fatalf("crowded gallery did not tighten the threshold: %+v", c)
	}
	// A fixed threshold wins.
	if c := calibrate(Options{Threshold: 0.3, TargetFAR: 0.01}, 50, 1, near, nil); c.Threshold != 0.3 || c.Fitted {
		t.Fatalf("fixed threshold: %+v", c)
	}
}

func TestNegativeFeedbackMovesBoundary(t *testing.T) {
	rng := newRNG(2)
	a := unit(rng, testDim)
	g := New(Options{Threshold: 0.4})
	if err := g.Load([]Person{person(rng, "A", a, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	lookalike := near(rng, a, 0.3) // accepted as A so far
	other := near(rng, a, 0.3)     // another face of A, elsewhere
	if dist(lookalike, other) < 0.35 {
		t.Fatal("test vectors too close")
	}
	for _, v := range [][]float32{lookalike, other} {
		if m, _ := g.Match(v); !m.Known {
			t.Fatalf("before feedback: %+v", m)
		}
	}
	// "This face is not A."
	if err := g.AddNegative("A", Sample{ID: "n1", Embedding: scaled(lookalike, 1.2)}); err != nil {
		t.Fatal(err)
	}
	m, _ := g.Match(near(rng, lookalike, 0.05))
	if m.Known || m.Reason != ReasonNegative || m.SecondID != "!A" {
		t.Fatalf("the look-alike is still accepted: %+v", m)
	}
	if m, _ := g.Match(other); !m.Known || m.PersonID != "A" {
		t.Fatalf("A's other side lost: %+v", m)
	}
	if m, _ := g.Match(a); !m.Known {
		t.Fatalf("A itself lost: %+v", m)
	}
	if in := g.Info(); in.Negatives != 1 {
		t.Fatalf("Info.Negatives = %d", in.Negatives)
	}
	if err := g.AddNegative("nobody", Sample{Embedding: a}); !errors.Is(err, ErrPersonNotFound) {
		t.Fatalf("negative for unknown person: %v", err)
	}
}

func TestSeveralClustersForVariedLooks(t *testing.T) {
	rng := newRNG(3)
	look1 := unit(rng, testDim)
	look2 := near(rng, look1, 0.7) // glasses / no glasses, years apart
	p := Person{ID: "A", Name: "A"}
	for i, c := range [][]float32{look1, look1, look1, look2, look2} {
		p.Samples = append(p.Samples, Sample{ID: string(rune('a' + i)), Embedding: near(rng, c, 0.15), Quality: 0.9})
	}
	g := New(Options{Threshold: 0.35})
	if err := g.Load([]Person{p}); err != nil {
		t.Fatal(err)
	}
	cl, ok := g.PersonClusters("A")
	if !ok || len(cl) != 2 || cl[0].Count != 3 || cl[1].Count != 2 {
		t.Fatalf("clusters = %+v", cl)
	}
	if cl[0].Spread <= 0 || cl[0].Spread > 0.2 || strings.Join(cl[1].Samples, ",") != "d,e" {
		t.Fatalf("cluster details: %+v", cl)
	}
	// Both looks are recognised; a single mean of all five would sit
	// between them and recognise neither.
	for _, c := range [][]float32{look1, look2} {
		m, _ := g.Match(near(rng, c, 0.1))
		if !m.Known || m.PersonID != "A" {
			t.Fatalf("look not recognised: %+v", m)
		}
	}
	if m, _ := g.Match(near(rng, look2, 0.1)); m.Cluster != 1 {
		t.Fatalf("matched cluster %d, want 1", m.Cluster)
	}
	mean := meanUnit([][]float32{look1, look1, look1, look2, look2}, nil)
	if dist(mean, look2) < 0.35 {
		t.Fatal("test looks too close for the point above")
	}
}

func TestWritersAndErrors(t *testing.T) {
	rng := newRNG(4)
	a, b := unit(rng, testDim), unit(rng, testDim)
	g := New(Options{Threshold: 0.4})
	if m, err := g.Match(a); err != nil || m.Known || m.Reason != ReasonEmpty {
		t.Fatalf("empty gallery: %+v, %v", m, err)
	}
	if err := g.Upsert(person(rng, "A", a, 2, 0.1)); err != nil {
		t.Fatal(err)
	}
	if err := g.Upsert(person(rng, "B", b, 2, 0.1)); err != nil {
		t.Fatal(err)
	}
	if in := g.Info(); in.People != 2 || in.Samples != 4 || in.Clusters != 2 {
		t.Fatalf("Info = %+v", in)
	}
	if err := g.Rename("A", "Alice"); err != nil {
		t.Fatal(err)
	}
	if m, _ := g.Match(a); m.Name != "Alice" || m.PersonID != "A" {
		t.Fatalf("after rename: %+v", m)
	}
	// Replacing A moves it.
	c := unit(rng, testDim)
	if err := g.Upsert(person(rng, "A", c, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if m, _ := g.Match(c); !m.Known || m.PersonID != "A" {
		t.Fatalf("after replace: %+v", m)
	}
	if m, _ := g.Match(a); m.Known {
		t.Fatalf("old A still matches: %+v", m)
	}
	if !g.Remove("A") || g.Remove("A") {
		t.Fatal("Remove")
	}
	if m, _ := g.Match(c); m.Known {
		t.Fatalf("removed person matched: %+v", m)
	}
	bad := []struct {
		name string
		err  error
		want error
	}{
		{"wrong length", func() error { _, err := g.Match(make([]float32, 5)); return err }(), ErrDimension},
		{"NaN", func() error { _, err := g.Match(append([]float32{float32(math.NaN())}, b[1:]...)); return err }(), ErrInvalidEmbedding},
		{"zero", func() error { _, err := g.Match(make([]float32, testDim)); return err }(), ErrInvalidEmbedding},
		{"empty", func() error { _, err := g.Match(nil); return err }(), ErrInvalidEmbedding},
		{"no samples", g.Upsert(Person{ID: "X"}), ErrNoSamples},
		{"sample of wrong length", g.Upsert(Person{ID: "X", Samples: []Sample{{ID: "s", Embedding: []float32{1, 2}}}}), ErrDimension},
		{"rename unknown", g.Rename("nobody", "x"), ErrPersonNotFound},
		{"weights mismatch", func() error { _, err := g.MatchMany([][]float32{b}, []float32{1, 2}); return err }(), nil},
	}
	for _, c := range bad {
		if c.err == nil || (c.want != nil && !errors.Is(c.err, c.want)) {
			t.Errorf("%s: got %v, want %v", c.name, c.err, c.want)
		}
	}
	// A failed write leaves the gallery as it was.
	if in := g.Info(); in.People != 1 {
		t.Fatalf("after failed writes: %+v", in)
	}
	if err := g.Load(nil); err != nil || g.Info().People != 0 {
		t.Fatalf("Load(nil): %v, %+v", err, g.Info())
	}
	// An empty gallery takes any dimension again.
	if err := g.Upsert(Person{ID: "S", Samples: []Sample{{ID: "s", Embedding: []float32{1, 2, 3}}}}); err != nil {
		t.Fatal(err)
	}
}

func TestMatchManyAveragesFaces(t *testing.T) {
	rng := newRNG(5)
	a := unit(rng, testDim)
	g := New(Options{Threshold: 0.35})
	if err := g.Load([]Person{person(rng, "A", a, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	// Three noisy frames, each alone beyond the threshold; their mean is
	// nearer (independent noise averages out).
	var frames [][]float32
	for i := 0; i < 6; i++ {
		frames = append(frames, near(rng, a, 0.42))
	}
	for _, f := range frames {
		if m, _ := g.Match(f); m.Known {
			t.Fatalf("single frame accepted: %+v", m)
		}
	}
	m, err := g.MatchMany(frames, []float32{1, 1, 1, 1, 1, 1})
	if err != nil || !m.Known {
		t.Fatalf("track of frames: %+v, %v", m, err)
	}
	// A weight of zero drops a frame: one bad frame alone decides nothing.
	bad := unit(rng, testDim)
	m, _ = g.MatchMany([][]float32{bad, frames[0], frames[1], frames[2], frames[3]}, []float32{0, 1, 1, 1, 1})
	if !m.Known {
		t.Fatalf("zero-weighted frame still counted: %+v", m)
	}
}

// permute is a projector that permutes and scales coordinates: distances
// are preserved, so decisions must not change, but a half-updated gallery
// (query projected one way, gallery the other) would fail.
type permute struct{ shift int }

func (p permute) Project(raw []float32) []float32 {
	out := make([]float32, len(raw))
	for i, x := range raw {
		out[(i+p.shift)%len(raw)] = 2 * x
	}
	return out
}

func (p permute) HeadID() string { return "perm" }

func TestProjectorSwapIsAtomic(t *testing.T) {
	rng := newRNG(6)
	var people []Person
	var probes [][]float32
	for i := 0; i < 30; i++ {
		c := unit(rng, testDim)
		people = append(people, person(rng, string(rune('A'+i)), c, 2, 0.1))
		probes = append(probes, near(rng, c, 0.1))
	}
	g := New(Options{Threshold: 0.35})
	if err := g.Load(people); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var failures atomic.Int64
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				k := (i + w) % len(probes)
				m, err := g.Match(probes[k])
				if err != nil || !m.Known || m.PersonID != people[k].ID {
					failures.Add(1)
				}
			}
		}(w)
	}
	for i := 0; i < 40; i++ {
		var p Projector
		if i%2 == 0 {
			p = permute{shift: 1 + i%7}
		}
		if err := g.SetProjector(p); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 && g.ProjectorID() != "perm" {
			t.Fatalf("ProjectorID = %q", g.ProjectorID())
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d matches saw a half-updated gallery", n)
	}
}

func TestKNNVote(t *testing.T) {
	at := func(deg float64) []float32 {
		r := deg * math.Pi / 180
		return []float32{float32(math.Cos(r)), float32(math.Sin(r)), 0}
	}
	// A: one sample at 0 degrees. B: samples at 25, 30 and 120 degrees, one
	// cluster whose centroid sits near 55 degrees. The probe at 20 degrees
	// is nearest to A's cluster, but two of its three nearest samples are B's.
	people := []Person{
		{ID: "A", Samples: []Sample{{ID: "a", Embedding: at(0)}}},
		{ID: "B", Samples: []Sample{{ID: "b1", Embedding: at(25)}, {ID: "b2", Embedding: at(30)}, {ID: "b3", Embedding: at(120)}}},
	}
	probe := at(20)
	for _, c := range []struct {
		knn    int
		known  bool
		reason string
	}{{0, true, ""}, {1, false, ReasonVote}, {3, false, ReasonVote}} {
		g := New(Options{Threshold: 0.4, KNN: c.knn, ClusterRadius: 1.5})
		if err := g.Load(people); err != nil {
			t.Fatal(err)
		}
		m, _ := g.Match(probe)
		if m.PersonID != "A" || m.Known != c.known || m.Reason != c.reason {
			t.Fatalf("KNN %d: %+v", c.knn, m)
		}
	}
	// Where A also holds the nearest samples, the vote agrees.
	g := New(Options{Threshold: 0.4, KNN: 3, ClusterRadius: 1.5})
	if err := g.Load(people); err != nil {
		t.Fatal(err)
	}
	if m, _ := g.Match(at(-5)); !m.Known || m.PersonID != "A" {
		t.Fatalf("vote refused a clear case: %+v", m)
	}
}

func TestCodedSearchFindsTheNearest(t *testing.T) {
	rng := newRNG(8)
	const people = 20000
	dim := testDim
	vecs := make([]float32, 0, people*dim)
	owner := make([]int32, 0, people)
	centres := make([][]float32, people)
	for p := 0; p < people; p++ {
		centres[p] = unit(rng, dim)
		vecs = append(vecs, centres[p]...)
		owner = append(owner, int32(p))
	}
	exact := newIndex(dim, vecs, owner, 0, nil)
	coded := newIndex(dim, vecs, owner, 256, newRotation(dim, 256, 1))
	miss := 0
	const queries = 300
	for q := 0; q < queries; q++ {
		p := rng.IntN(people)
		probe := near(rng, centres[p], 0.3+0.2*rng.Float64()) // a face of p, as far as faces get
		want := exact.search(probe, searchParams{exclude: -1, workers: 2})
		got := coded.search(probe, searchParams{exclude: -1, workers: 2, candidates: 2048})
		if got.best.slot != want.best.slot {
			miss++
		}
		if want.best.slot != int32(p) {
			t.Fatalf("exact search got %d, want %d", want.best.slot, p)
		}
	}
	if miss > queries/100 {
		t.Fatalf("coded search missed the nearest person %d of %d times", miss, queries)
	}
}

func TestExactSearchSplitsAcrossWorkers(t *testing.T) {
	rng := newRNG(9)
	const n = 3 * parallelMin
	vecs := make([]float32, 0, n*testDim)
	owner := make([]int32, n)
	for i := 0; i < n; i++ {
		vecs = append(vecs, unit(rng, testDim)...)
		owner[i] = int32(i / 3)
	}
	ix := newIndex(testDim, vecs, owner, 0, nil)
	for q := 0; q < 20; q++ {
		probe := unit(rng, testDim)
		one := ix.search(probe, searchParams{exclude: -1, workers: 1, k: 5})
		two := ix.search(probe, searchParams{exclude: -1, workers: 2, k: 5})
		if one.best != two.best || one.second != two.second || len(one.knn) != 5 || len(two.knn) != 5 {
			t.Fatalf("1 worker %+v, 2 workers %+v", one, two)
		}
		for i := range one.knn {
			if one.knn[i] != two.knn[i] {
				t.Fatalf("knn differ: %+v vs %+v", one.knn, two.knn)
			}
		}
		if one.best.slot == one.second.slot {
			t.Fatal("second best is the same person")
		}
	}
}

// TestCalibrationFollowsHeavyLowerTail: nearest-person distances with a
// long lower tail (a few strangers much nearer than the bulk) move the
// fitted threshold down, where a plain normal fit of the middle would not.
func TestCalibrationFollowsHeavyLowerTail(t *testing.T) {
	opts := Options{Space: MobileFaceNetSpace}
	opts.fill()
	var narrow, tailed []float64
	for i := 0; i < 100; i++ {
		d := 1.4 + 0.05*float64(i%10-5)/5
		narrow = append(narrow, d)
		if i%5 == 0 {
			d -= 0.3 // one in five far nearer
		}
		tailed = append(tailed, d)
	}
	a := calibrate(opts, 50, 1, narrow, nil)
	b := calibrate(opts, 50, 1, tailed, nil)
	if b.Threshold >= a.Threshold-0.05 {
		t.Errorf("threshold with a heavy lower tail %.3f, without %.3f: want clearly lower", b.Threshold, a.Threshold)
	}
	if got := lowerTailSD([]float64{1, 2, 3}, 2); got != 0 {
		t.Errorf("lowerTailSD of 3 points = %v, want 0 (too few)", got)
	}
}
