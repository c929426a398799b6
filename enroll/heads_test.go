package enroll

import (
	"errors"
	"testing"
	"time"

	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/store"
)

// headWeights are an identity head's for dim-d vectors.
func headWeights(t *testing.T, dim int) []byte {
	t.Helper()
	h, err := head.New(dim, 1)
	var b []byte
	if err == nil {
		b, err = h.Marshal()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHeadsRules: the rules `edged model` (any backbone) and the web page
// (the running backbone) share: which versions are usable, which can be
// activated, where a rollback goes.
func TestHeadsRules(t *testing.T) {
	st := newTestStore(t)
	t0 := time.Now().UTC().Add(-time.Hour)
	vs := []store.HeadVersion{
		{ID: "h0", Weights: headWeights(t, 128), Created: t0, Backbone: "dlib", Note: "oldest"},
		{ID: "h1", Weights: headWeights(t, 192), Created: t0.Add(time.Minute), Backbone: "mobilefacenet"},
		{ID: "h2", Weights: headWeights(t, 128), Created: t0.Add(2 * time.Minute), Note: "rejected: worse"}, // legacy: dlib
		{ID: "h3", Weights: []byte("garbage"), Created: t0.Add(3 * time.Minute), Backbone: "dlib"},
		{ID: "h4", Weights: headWeights(t, 128), Created: t0.Add(4 * time.Minute), Backbone: "dlib", Active: true},
	}
	for i := range vs {
		if err := st.Update(func(tx *store.Tx) error { return tx.SaveHead(&vs[i]) }); err != nil {
			t.Fatal(err)
		}
	}
	anyBB := Heads{Store: st, Backbone: AnyBackbone}
	dlib := Heads{Store: st, Backbone: "dlib"}

	usable := func(hs Heads) string {
		list, err := hs.List()
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, h := range list {
			if h.Usable != (h.Why == "") {
				t.Errorf("%s: usable %v, why %q", h.ID, h.Usable, h.Why)
			}
			if h.Usable {
				s += h.ID
			}
		}
		return s
	}
	if got := usable(anyBB); got != "h0h1h4" {
		t.Errorf("usable for any backbone: %s", got)
	}
	if got := usable(dlib); got != "h0h4" {
		t.Errorf("usable for dlib: %s", got)
	}

	// Rollback from h4: h3 does not decode, h2 was rejected; dlib skips
	// h1 (mobilefacenet) too.
	if from, to, err := dlib.Rollback(); err != nil || from.ID != "h4" || to.ID != "h0" || !to.Active {
		t.Fatalf("dlib rollback: %s -> %s, %v", from.ID, to.ID, err)
	}
	if _, err := anyBB.Activate("h4"); err != nil {
		t.Fatal(err)
	}
	if _, to, err := anyBB.Rollback(); err != nil || to.ID != "h1" {
		t.Fatalf("any-backbone rollback to %q, %v", to.ID, err)
	}
	if _, to, err := dlib.Rollback(); err != nil || to.ID != "h0" {
		t.Fatalf("rollback from another backbone's head to %q, %v", to.ID, err)
	}
	if _, to, err := dlib.Rollback(); err != nil || to.ID != "" {
		t.Fatalf("rollback from the oldest to %q, %v", to.ID, err)
	}
	if _, _, err := dlib.Rollback(); !errors.Is(err, ErrNoActiveHead) {
		t.Fatalf("rollback with none active: %v", err)
	}

	// Activate: a rejected version by hand, never undecodable weights or
	// (with a backbone) another backbone's head.
	if info, err := dlib.Activate("h2"); err != nil || !info.Active {
		t.Fatalf("activate the rejected version: %v", err)
	}
	var unusable *UnusableHeadError
	if _, err := anyBB.Activate("h3"); !errors.As(err, &unusable) || !errors.Is(err, head.ErrCorrupt) || unusable.ID != "h3" {
		t.Fatalf("activate undecodable weights: %v", err)
	}
	if _, err := dlib.Activate("h1"); !errors.As(err, &unusable) || unusable.Err != nil || unusable.Why == "" {
		t.Fatalf("activate another backbone's head: %v", err)
	}
	if _, err := anyBB.Activate("h1"); err != nil {
		t.Fatalf("activate h1 for any backbone: %v", err)
	}
	if _, err := dlib.Activate("nope"); !errors.Is(err, store.ErrHeadNotFound) {
		t.Fatalf("activate an unknown id: %v", err)
	}
	if err := dlib.Deactivate(); err != nil {
		t.Fatal(err)
	}
	if h, err := st.ActiveHead(); err != nil || h != nil {
		t.Fatalf("after Deactivate: %v %v", h, err)
	}

	// Import: the backbone from the dimension.
	dims := map[string]int{"dlib": 128, "mobilefacenet": 192}
	if info, err := dlib.Import("h.bin", headWeights(t, 192), dims, "", true); err != nil || info.BackboneID() != "mobilefacenet" ||
		info.Note != "imported from h.bin" || !info.Active || info.Usable {
		t.Fatalf("import a 192-d head: %+v %v", info, err)
	}
	if _, err := dlib.Import("h.bin", headWeights(t, 64), dims, "", false); err == nil {
		t.Fatal("import a 64-d head: no error")
	}
	if _, err := dlib.Import("h.bin", []byte("EDHD"), dims, "", false); !errors.Is(err, head.ErrCorrupt) {
		t.Fatalf("import garbage: %v", err)
	}
}
