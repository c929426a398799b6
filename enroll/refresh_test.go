package enroll

import (
	"bytes"
	"image/png"
	"slices"
	"testing"

	"github.com/edged-dev/edged/store"
)

// TestRefresh: people written to the store behind the Enroller's back
// (as package fleet does) reach the gallery through Refresh, renamed and
// deleted ones too.
func TestRefresh(t *testing.T) {
	w := newWorld(t)
	st := newTestStore(t)
	en, g := w.enroller(st, Options{})
	v := w.unit()
	var id string
	err := st.Update(func(tx *store.Tx) error {
		p := store.Person{Name: "Remote"}
		if err := tx.PutPerson(&p); err != nil {
			return err
		}
		id = p.ID
		for i := 0; i < 2; i++ {
			s := store.Sample{PersonID: p.ID, Embedding: w.near(v, 0.05)}
			if err := tx.AddSample(&s, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := en.Refresh(id, "no-such-person"); err != nil {
		t.Fatal(err)
	}
	m, err := g.Match(v)
	if err != nil || m.PersonID != id || m.Name != "Remote" {
		t.Fatalf("match after refresh: %+v %v", m, err)
	}
	var c store.Clusters
	err = st.View(func(tx *store.Tx) (err error) { c, err = tx.Clusters(id); return err })
	if err != nil || len(c.Clusters) == 0 {
		t.Fatalf("clusters not stored: %+v %v", c, err)
	}
	if _, err := st.RenamePerson(id, "Renamed"); err != nil {
		t.Fatal(err)
	}
	if err := en.Refresh(id); err != nil {
		t.Fatal(err)
	}
	if m, _ := g.Match(v); m.Name != "Renamed" {
		t.Fatalf("rename not refreshed: %+v", m)
	}
	if err := st.DeletePerson(id); err != nil {
		t.Fatal(err)
	}
	if err := en.Refresh(id); err != nil {
		t.Fatal(err)
	}
	if g.Info().People != 0 {
		t.Fatalf("deleted person still in the gallery: %+v", g.Info())
	}
}

// TestChangedHook: every committed change reports its person; refused
// ones do not.
func TestChangedHook(t *testing.T) {
	w := newWorld(t)
	st := newTestStore(t)
	var got []string
	en, _ := w.enroller(st, Options{Changed: func(ids ...string) { got = append(got, ids...) }})
	v := w.unit()
	res, err := en.EnrollEmbeddings(t.Context(), "Ann", "", []Embedding{{Embedding: v}, {Embedding: w.near(v, 0.05)}})
	if err != nil {
		t.Fatal(err)
	}
	id := res.PersonID
	if _, err := en.Rename(id, "Anna"); err != nil {
		t.Fatal(err)
	}
	if _, err := en.Rename(id, ""); err == nil {
		t.Fatal("empty name accepted")
	}
	if _, err := en.Feedback(id, w.unit(), store.SourceTrack, "cam/1"); err != nil {
		t.Fatal(err)
	}
	samples, _ := st.Samples(id)
	if _, err := en.RemoveSample(id, samples[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := en.Delete(id); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("changed %d times (%v), want 5: enroll, rename, feedback, remove, delete", len(got), got)
	}
	for _, g := range got {
		if g != id {
			t.Fatalf("changed %q, want %q", g, id)
		}
	}
}

// TestRefreshMany reloads the whole gallery for many people at once.
func TestRefreshMany(t *testing.T) {
	w := newWorld(t)
	st := newTestStore(t)
	en, g := w.enroller(st, Options{})
	var ids []string
	err := st.Update(func(tx *store.Tx) error {
		for i := 0; i < refreshOneByOne+2; i++ {
			p := store.Person{Name: "P" + string(rune('a'+i))}
			if err := tx.PutPerson(&p); err != nil {
				return err
			}
			ids = append(ids, p.ID)
			s := store.Sample{PersonID: p.ID, Embedding: w.unit()}
			if err := tx.AddSample(&s, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := en.Refresh(ids...); err != nil {
		t.Fatal(err)
	}
	if g.Info().People != len(ids) {
		t.Fatalf("gallery has %d people, want %d", g.Info().People, len(ids))
	}
}

func TestEmbedCrops(t *testing.T) {
	var crops [][]byte
	for k := 1; k <= 3; k++ {
		var buf bytes.Buffer
		if err := png.Encode(&buf, cropOf(k).Image()); err != nil {
			t.Fatal(err)
		}
		crops = append(crops, buf.Bytes())
	}
	emb := &targetEmbedder{t: t}
	vecs, err := EmbedCrops(crops, cutChip, emb)
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 3; k++ {
		if !slices.Equal(vecs[k-1], targetVec(k)) {
			t.Fatalf("crop %d: wrong vector", k)
		}
	}
	if _, err := EmbedCrops([][]byte{[]byte("not a png")}, cutChip, emb); err == nil {
		t.Fatal("a bad crop was embedded")
	}
}
