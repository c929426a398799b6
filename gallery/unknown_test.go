package gallery

import (
	"errors"
	"testing"
	"time"
)

func TestUnknownClustering(t *testing.T) {
	rng := newRNG(21)
	x, y := unit(rng, testDim), unit(rng, testDim)
	u := NewUnknowns(UnknownOptions{MaxAge: -1}) // fixed past times: no age bound
	next := uint64(0)
	number := func() (uint64, error) { next++; return next, nil }
	t0 := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	appearance := func(c []float32, at time.Time, cam string) []UnknownFace {
		var fs []UnknownFace
		for i := 0; i < 3; i++ {
			fs = append(fs, UnknownFace{Embedding: scaled(near(rng, c, 0.3), 1.4), Quality: 0.8, Time: at, Camera: cam})
		}
		return fs
	}
	// X comes three times (two cameras), Y once.
	plan := []struct {
		c       []float32
		cam     string
		wantID  string
		created bool
	}{
		{x, "door", "unknown-1", true},
		{y, "door", "unknown-2", true},
		{x, "garden", "unknown-1", false},
		{x, "door", "unknown-1", false},
	}
	for i, p := range plan {
		id, created, ok, err := u.Observe(appearance(p.c, t0.Add(time.Duration(i)*time.Hour), p.cam), number)
		if err != nil || !ok || id.ID != p.wantID || created != p.created {
			t.Fatalf("appearance %d: %s created=%v ok=%v err=%v, want %s created=%v", i, id.ID, created, ok, err, p.wantID, p.created)
		}
	}
	list := u.List()
	if len(list) != 2 {
		t.Fatalf("%d identities", len(list))
	}
	x1 := list[0]
	if x1.Count != 3 || !x1.FirstSeen.Equal(t0) || !x1.LastSeen.Equal(t0.Add(3*time.Hour)) || len(x1.Cameras) != 2 || len(x1.Faces) != 9 {
		t.Fatalf("unknown-1: count %d, first %v, last %v, cameras %v, %d faces", x1.Count, x1.FirstSeen, x1.LastSeen, x1.Cameras, len(x1.Faces))
	}
	if id, _ := u.Match(appearance(x, t0, "")); id != "unknown-1" {
		t.Fatalf("Match = %q", id)
	}
	// Poor faces are not clustered.
	_, _, ok, err := u.Observe([]UnknownFace{{Embedding: x, Quality: 0.1}}, number)
	if ok || err != nil {
		t.Fatalf("poor face: ok=%v err=%v", ok, err)
	}
	// A failing counter creates nothing.
	_, _, ok, err = u.Observe(appearance(unit(rng, testDim), t0, ""), func() (uint64, error) { return 0, errors.New("disk full") })
	if ok || err == nil || len(u.List()) != 2 {
		t.Fatalf("failing counter: ok=%v err=%v", ok, err)
	}
	// Persisted and loaded back, the identities keep matching.
	v := NewUnknowns(UnknownOptions{MaxAge: -1}) // fixed past times: no age bound
	v.Load(list)
	id, created, ok, err := v.Observe(appearance(y, t0, "door"), number)
	if err != nil || !ok || created || id.ID != "unknown-2" || id.Count != 2 {
		t.Fatalf("after Load: %+v created=%v ok=%v err=%v", id, created, ok, err)
	}
	if !v.Remove("unknown-2") || v.Remove("unknown-2") || len(v.List()) != 1 {
		t.Fatal("Remove")
	}
}

// TestUnknownsExpire: the age bound and the least-recently-seen eviction.
func TestUnknownsExpire(t *testing.T) {
	u := NewUnknowns(UnknownOptions{Max: 2, MaxAge: time.Hour})
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var ids []UnknownIdentity
	for i := 0; i < 4; i++ {
		ids = append(ids, UnknownIdentity{ID: unknownName(i), Number: uint64(i + 1), Count: 1,
			FirstSeen: now.Add(-3 * time.Hour), LastSeen: now.Add(time.Duration(-90+20*i) * time.Minute), Centroid: []float32{1, 0}})
	}
	u.opts.MaxAge, u.opts.Max = -1, -1 // Load at the real time: keep everything for now
	u.Load(ids)
	u.opts.MaxAge, u.opts.Max = time.Hour, 2
	gone := u.Expire(now)
	// 90 min ago: too old; then of 70, 50 and 30 min ago, the two newest stay.
	if len(gone) != 2 || gone[0].ID != ids[0].ID || gone[1].ID != ids[1].ID || u.Len() != 2 {
		t.Fatalf("gone %v, %d left", gone, u.Len())
	}
}

func unknownName(i int) string { return "unknown-" + string(rune('1'+i)) }
