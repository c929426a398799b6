package gallery

import (
	"fmt"
	"math/rand"
	"testing"
)

func randUnit(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return normalized(v)
}

func jitter(r *rand.Rand, v []float32, s float64) []float32 {
	out := make([]float32, len(v))
	for i := range v {
		out[i] = v[i] + float32(s*r.NormFloat64())
	}
	return out
}

// TestExperienceClustersApart: experience faces form clusters of their
// own, marked, that match their domain's faces; the same-person fit is
// the samples' alone, and the experience faces are stranger queries too.
func TestExperienceClustersApart(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	var plain, withExp []Person
	nights := map[string][]float32{}
	for i := 0; i < 12; i++ {
		c := randUnit(r, 128)
		night := randUnit(r, 128) // another look altogether
		p := Person{ID: string(rune('a' + i)), Name: string(rune('A' + i))}
		for j := 0; j < 3; j++ {
			p.Samples = append(p.Samples, Sample{ID: p.ID + string(rune('0'+j)), Embedding: jitter(r, c, 0.02), Quality: 1})
		}
		plain = append(plain, p)
		p.Experience = []Sample{{ID: p.ID + "x0", Embedding: jitter(r, night, 0.02), Quality: 0.5}, {ID: p.ID + "x1", Embedding: jitter(r, night, 0.02), Quality: 0.5}}
		withExp = append(withExp, p)
		nights[p.ID] = night
	}
	g0, g1 := New(Options{}), New(Options{})
	if err := g0.Load(plain); err != nil {
		t.Fatal(err)
	}
	if err := g1.Load(withExp); err != nil {
		t.Fatal(err)
	}
	cs, _ := g1.PersonClusters("a")
	if len(cs) != 2 || cs[0].Experience || !cs[1].Experience || cs[0].Count != 3 || cs[1].Count != 2 {
		t.Fatalf("clusters %+v: want the 3 samples' then the 2 experience faces'", cs)
	}
	if in := g1.Info(); in.Experience != 24 || in.Samples != 36 {
		t.Fatalf("info %+v", in)
	}
	c0, c1 := g0.Info().Calibration, g1.Info().Calibration
	if c0.GenuineMean != c1.GenuineMean || c0.GenuineSD != c1.GenuineSD {
		t.Fatalf("experience moved the same-person fit: %+v vs %+v", c0, c1)
	}
	if c1.Points != c0.Points+24 {
		t.Fatalf("%d stranger points with experience, %d without: each experience face is a stranger query too", c1.Points, c0.Points)
	}
	m0, _ := g0.Match(jitter(r, nights["c"], 0.02))
	m1, _ := g1.Match(jitter(r, nights["c"], 0.02))
	if m0.Known || !m1.Known || m1.PersonID != "c" || m1.Cluster != 1 {
		t.Fatalf("a night face: without experience %+v, with %+v; want unknown, then c by its experience cluster", m0, m1)
	}
}

type scaledIdentity float64

func (s scaledIdentity) Project(v []float32) []float32 { return v }
func (s scaledIdentity) DistanceScale() float64        { return float64(s) }

// TestDistanceScaleScalesPrior: a projector's distance scale scales the
// calibration prior (a gallery too small to measure keeps the prior).
func TestDistanceScaleScalesPrior(t *testing.T) {
	g := New(Options{Space: MobileFaceNetSpace})
	t0 := g.Threshold()
	if err := g.SetProjector(scaledIdentity(0.5)); err != nil {
		t.Fatal(err)
	}
	if t1 := g.Threshold(); t1 > 0.51*t0 || t1 < 0.49*t0 {
		t.Fatalf("threshold %.3f with scale 0.5, %.3f without", t1, t0)
	}
}

// TestStrangersCalibrate: faces of the camera's strangers near the
// enrolled people pull the fitted threshold in.
func TestStrangersCalibrate(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	var people []Person
	var near [][]float32
	for i := 0; i < 10; i++ {
		c := randUnit(r, 128)
		p := Person{ID: string(rune('a' + i))}
		for j := 0; j < 3; j++ {
			p.Samples = append(p.Samples, Sample{ID: p.ID + string(rune('0'+j)), Embedding: jitter(r, c, 0.02), Quality: 1})
		}
		people = append(people, p)
		near = append(near, jitter(r, c, 0.06)) // a look-alike of each
	}
	g := New(Options{})
	if err := g.Load(people); err != nil {
		t.Fatal(err)
	}
	t0 := g.Threshold()
	g.AddStrangers(near)
	t1 := g.Threshold()
	if t1 >= t0 || g.Info().Calibration.Points != 30+10 {
		t.Fatalf("threshold %.3f -> %.3f with %d points: look-alike strangers must pull it in", t0, t1, g.Info().Calibration.Points)
	}
	g.SetStrangers(nil)
	if g.Threshold() != t0 {
		t.Fatalf("threshold %.3f after the strangers were cleared, want %.3f", g.Threshold(), t0)
	}
}

// TestAddStrangersDefersLargeRefits: with 1,000 people a new unknown
// track's faces do not refit the threshold on the caller's goroutine each
// time; the fit follows once enough new faces gathered. A small gallery
// refits every time.
func TestAddStrangersDefersLargeRefits(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	build := func(n int) (*Gallery, [][]float32) {
		var people []Person
		var centres [][]float32
		for i := 0; i < n; i++ {
			c := randUnit(r, 64)
			centres = append(centres, c)
			id := fmt.Sprintf("p%04d", i)
			people = append(people, Person{ID: id, Samples: []Sample{
				{ID: id + "a", Embedding: jitter(r, c, 0.02), Quality: 1},
				{ID: id + "b", Embedding: jitter(r, c, 0.02), Quality: 1}}})
		}
		g := New(Options{})
		if err := g.Load(people); err != nil {
			t.Fatal(err)
		}
		return g, centres
	}
	g, centres := build(1000)
	points := func() int { return g.Info().Calibration.Points }
	track := func(k int) [][]float32 { // a look-alike stranger, 3 frames
		return [][]float32{jitter(r, centres[k], 0.06), jitter(r, centres[k], 0.06), jitter(r, centres[k], 0.06)}
	}
	p0 := points()
	g.AddStrangers(track(0)) // the first strangers: fitted at once
	p1 := points()
	if p1 != p0+3 {
		t.Fatalf("calibration points %d -> %d after the first 3 stranger faces, want +3", p0, p1)
	}
	g.AddStrangers(track(1))
	g.AddStrangers(track(2))
	if got := points(); got != p1 {
		t.Fatalf("calibration points %d -> %d after 6 more faces: a 1,000-person gallery refits after 8", p1, got)
	}
	g.AddStrangers(track(3))
	if got := points(); got != p1+9 {
		t.Fatalf("calibration points %d after 9 new faces, want %d (refit)", got, p1+9)
	}

	small, centres := build(20)
	q0 := small.Info().Calibration.Points
	small.AddStrangers([][]float32{jitter(r, centres[0], 0.06)})
	small.AddStrangers([][]float32{jitter(r, centres[1], 0.06)})
	if got := small.Info().Calibration.Points; got != q0+2 {
		t.Fatalf("small gallery: calibration points %d -> %d, want a refit per call", q0, got)
	}
}
