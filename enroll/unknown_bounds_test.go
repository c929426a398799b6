package enroll

import (
	"testing"
	"time"

	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/store"
)

// TestUnknownIdentitiesAreBounded: an identity was created for every
// stranger with no cap or expiry, all loaded at start and fed to
// fine-tuning. Now a new identity past Max evicts the least recently seen
// one (deleted from the store with its faces in the same transaction),
// identities past MaxAge are not loaded and PruneUnknowns deletes them.
func TestUnknownIdentitiesAreBounded(t *testing.T) {
	w := newWorld(t)
	st := newTestStore(t)
	u := gallery.NewUnknowns(gallery.UnknownOptions{Max: 3, MaxAge: 24 * time.Hour})
	en := New(st, gallery.New(gallery.Options{}), nil, nil, Options{Unknowns: u})
	now := time.Now()
	var ids []string
	for i := 0; i < 5; i++ { // five strangers, seen a minute apart
		v := w.unit()
		at := now.Add(time.Duration(i-10) * time.Minute)
		id, created, ok, err := en.ObserveUnknown(u, []gallery.UnknownFace{{Embedding: v, Quality: 0.9, Time: at}, {Embedding: w.near(v, 0.05), Quality: 0.9, Time: at}})
		if err != nil || !ok || !created {
			t.Fatalf("stranger %d: %v %v %v", i, created, ok, err)
		}
		ids = append(ids, id.ID)
	}
	stored, err := st.Unknowns()
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 3 || u.Len() != 3 {
		t.Fatalf("%d stored, %d in memory; want the bound, 3", len(stored), u.Len())
	}
	for _, x := range stored {
		if x.ID == ids[0] || x.ID == ids[1] {
			t.Fatalf("the least recently seen %s was kept", x.ID)
		}
		if len(x.Samples) != 2 {
			t.Fatalf("%s has %d faces", x.ID, len(x.Samples))
		}
	}

	// Two days later nobody came back: not loaded, and pruned.
	later := now.Add(48 * time.Hour)
	gone, err := PruneUnknowns(st, u, later)
	if err != nil || len(gone) != 3 {
		t.Fatalf("PruneUnknowns = %v, %v", gone, err)
	}
	if stored, _ := st.Unknowns(); len(stored) != 0 || u.Len() != 0 {
		t.Fatalf("left after prune: %d stored, %d in memory", len(stored), u.Len())
	}

	// An old identity in the store is left out at load (and deleted).
	old := store.Unknown{}
	if err := st.Update(func(tx *store.Tx) error {
		var err error
		if old, err = tx.NewUnknown(); err != nil {
			return err
		}
		old.FirstSeen, old.LastSeen, old.Count, old.Centroid = now.AddDate(0, -2, 0), now.AddDate(0, -2, 0), 1, w.unit()
		return tx.PutUnknown(old)
	}); err != nil {
		t.Fatal(err)
	}
	u2 := gallery.NewUnknowns(gallery.UnknownOptions{})
	if _, err := LoadUnknowns(st, u2, ""); err != nil || u2.Len() != 0 {
		t.Fatalf("LoadUnknowns kept an identity two months old: %d, %v", u2.Len(), err)
	}
	if stored, _ := st.Unknowns(); len(stored) != 0 {
		t.Fatalf("the expired identity is still stored")
	}
}
