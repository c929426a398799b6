package enroll

import (
	"errors"
	"fmt"
	"time"

	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/store"
)

// LoadUnknowns fills u with the unknown-face clusters kept in st whose
// vectors are of the backbone with id backbone ("" reads as
// store.LegacyBackbone). It returns how many clusters of another backbone
// it left out: they keep no crops, so they cannot be re-embedded; Reembed
// deletes them at its switch (they are transient: the faces come back).
func LoadUnknowns(st *store.Store, u *gallery.Unknowns, backbone string) (leftOut int, err error) {
	us, err := st.Unknowns()
	if err != nil {
		return 0, fmt.Errorf("load unknown faces: %w", err)
	}
	backbone = store.BackboneOf(backbone)
	ids := make([]gallery.UnknownIdentity, 0, len(us))
	for _, x := range us {
		if unknownBackbone(x) != backbone {
			leftOut++
			continue
		}
		id := gallery.UnknownIdentity{ID: x.ID, Number: x.Number, Count: x.Count, FirstSeen: x.FirstSeen,
			LastSeen: x.LastSeen, Cameras: x.Cameras, Centroid: x.Centroid}
		for _, s := range x.Samples {
			id.Faces = append(id.Faces, gallery.UnknownFace{Embedding: s.Embedding, Quality: s.Quality, Time: s.Time, Camera: s.Camera})
		}
		ids = append(ids, id)
	}
	// Identities past the bounds (UnknownOptions.Max, MaxAge) are not
	// loaded, so they are neither matched nor fed to fine-tuning; a
	// writable store deletes them too (best effort: PruneUnknowns retries).
	if gone := u.Load(ids); len(gone) > 0 && !st.ReadOnly() {
		_ = deleteUnknowns(st, gone)
	}
	return leftOut, nil
}

// PruneUnknowns applies the bounds of u (UnknownOptions.Max, MaxAge) at
// now to the identities in memory and in the store: the expired or
// evicted ones are deleted with their faces (the store keeps an
// identity's faces in its record). It returns the ids deleted. The daemon
// calls it at start and periodically; ObserveUnknown applies the bounds
// on every new identity and calls it at most hourly.
func PruneUnknowns(st *store.Store, u *gallery.Unknowns, now time.Time) ([]string, error) {
	gone := u.Expire(now)
	maxAge := u.Options().MaxAge
	if maxAge > 0 {
		us, err := st.Unknowns()
		if err != nil {
			return nil, fmt.Errorf("prune unknown faces: %w", err)
		}
		for _, x := range us {
			seen := x.LastSeen
			if seen.IsZero() {
				seen = x.FirstSeen
			}
			if !seen.IsZero() && now.Sub(seen) > maxAge { // no time: never expires
				gone = append(gone, gallery.UnknownIdentity{ID: x.ID})
			}
		}
	}
	if err := deleteUnknowns(st, gone); err != nil {
		return nil, fmt.Errorf("prune unknown faces: %w", err)
	}
	ids := make([]string, 0, len(gone))
	seen := map[string]bool{}
	for _, g := range gone {
		if !seen[g.ID] {
			seen[g.ID] = true
			ids = append(ids, g.ID)
		}
	}
	return ids, nil
}

// deleteUnknowns deletes identities from the store (missing ones are
// skipped), in one transaction.
func deleteUnknowns(st *store.Store, gone []gallery.UnknownIdentity) error {
	if len(gone) == 0 {
		return nil
	}
	return st.Update(func(tx *store.Tx) error { return deleteUnknownsTx(tx, gone) })
}

func deleteUnknownsTx(tx *store.Tx, gone []gallery.UnknownIdentity) error {
	for _, g := range gone {
		if err := tx.DeleteUnknown(g.ID); err != nil && !errors.Is(err, store.ErrUnknownNotFound) {
			return err
		}
	}
	return nil
}

// unknownBackbone is the backbone of an unknown cluster's vectors, or
// "several" when its samples disagree with it (edged never writes that).
func unknownBackbone(u store.Unknown) string {
	bb := u.BackboneID()
	for _, s := range u.Samples {
		if s.BackboneID() != bb {
			return "several"
		}
	}
	return bb
}

// ObserveUnknown files one appearance of an unknown person (the good faces
// of a track decided unknown) under its unknown-N identity, creating one
// when nobody similar was seen before, and stores it. ok is false when no
// face was good enough to cluster (nothing stored).
func (e *Enroller) ObserveUnknown(u *gallery.Unknowns, faces []gallery.UnknownFace) (id store.Unknown, created, ok bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	newNumber := func() (uint64, error) {
		var n uint64
		// The number is taken in its own transaction: a crash before the
		// identity is stored only leaves a gap, numbers are never reused.
		err := e.st.Update(func(tx *store.Tx) error {
			x, err := tx.NewUnknown()
			n = x.Number
			return err
		})
		return n, err
	}
	gid, created, ok, err := u.Observe(faces, newNumber)
	if err != nil || !ok {
		return store.Unknown{}, false, ok, err
	}
	// The bounds: a new identity past Max evicts the least recently seen
	// one, deleted in the same transaction as the new one is stored.
	now := time.Now()
	evicted := u.Expire(now)
	id = store.Unknown{ID: gid.ID, Number: gid.Number, Count: gid.Count, FirstSeen: gid.FirstSeen, LastSeen: gid.LastSeen,
		Cameras: gid.Cameras, Backbone: e.opts.Backbone, Centroid: gid.Centroid}
	for _, f := range gid.Faces {
		id.Samples = append(id.Samples, store.UnknownSample{Embedding: f.Embedding, Backbone: e.opts.Backbone,
			Quality: f.Quality, Time: f.Time, Camera: f.Camera})
	}
	if err := e.st.Update(func(tx *store.Tx) error {
		if err := deleteUnknownsTx(tx, evicted); err != nil {
			return err
		}
		return tx.PutUnknown(id)
	}); err != nil {
		return store.Unknown{}, false, false, fmt.Errorf("store %s: %w", id.ID, err)
	}
	// The camera's strangers calibrate the gallery's threshold.
	strangers := make([][]float32, 0, len(faces))
	for _, f := range faces {
		strangers = append(strangers, f.Embedding)
	}
	e.g.AddStrangers(strangers)
	if now.Sub(e.unknownsPruned) > time.Hour {
		// Identities nobody saw for MaxAge leave the store even when no
		// new one evicts them (the daemon prunes at start too).
		e.unknownsPruned = now
		if _, err := PruneUnknowns(e.st, u, now); err != nil {
			e.opts.Logger.Warn("unknown faces past their age bound not deleted", "err", err)
		}
	}
	return id, created, true, nil
}
