package store

import (
	"testing"
	"time"
)

func TestExperienceLifecycle(t *testing.T) {
	s := newTestStore(t)
	p := Person{Name: "Ada"}
	if err := s.Update(func(tx *Tx) error { return tx.PutPerson(&p) }); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(100, 0).UTC()
	for i := 0; i < 3; i++ {
		x := Experience{PersonID: p.ID, Embedding: []float32{1, float32(i), 0}, Backbone: "mobilefacenet", Ref: "cam/7", Quality: 0.5, Created: t0.Add(time.Duration(-i) * time.Second)}
		if err := s.Update(func(tx *Tx) error { return tx.AddExperience(&x, nil) }); err != nil {
			t.Fatal(err)
		}
	}
	var xs []Experience
	if err := s.View(func(tx *Tx) (err error) { xs, err = tx.ExperienceOf(p.ID); return err }); err != nil {
		t.Fatal(err)
	}
	if len(xs) != 3 || xs[0].Embedding[1] != 2 || xs[2].Embedding[1] != 0 || xs[0].Ref != "cam/7" || xs[0].BackboneID() != "mobilefacenet" {
		t.Fatalf("experience not read back oldest first: %+v", xs)
	}
	if err := s.Update(func(tx *Tx) error { return tx.DeleteExperience(p.ID, xs[0].ID) }); err != nil {
		t.Fatal(err)
	}
	all, err := s.Experience()
	if err != nil || len(all) != 2 {
		t.Fatalf("after one delete: %d, %v", len(all), err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.DeletePerson(p.ID) }); err != nil {
		t.Fatal(err)
	}
	if all, err = s.Experience(); err != nil || len(all) != 0 {
		t.Fatalf("experience left after DeletePerson: %d, %v", len(all), err)
	}
}
