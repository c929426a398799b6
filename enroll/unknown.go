package enroll

import (
	"fmt"

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
	u.Load(ids)
	return leftOut, nil
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
	id = store.Unknown{ID: gid.ID, Number: gid.Number, Count: gid.Count, FirstSeen: gid.FirstSeen, LastSeen: gid.LastSeen,
		Cameras: gid.Cameras, Backbone: e.opts.Backbone, Centroid: gid.Centroid}
	for _, f := range gid.Faces {
		id.Samples = append(id.Samples, store.UnknownSample{Embedding: f.Embedding, Backbone: e.opts.Backbone,
			Quality: f.Quality, Time: f.Time, Camera: f.Camera})
	}
	if err := e.st.Update(func(tx *store.Tx) error { return tx.PutUnknown(id) }); err != nil {
		return store.Unknown{}, false, false, fmt.Errorf("store %s: %w", id.ID, err)
	}
	return id, created, true, nil
}
