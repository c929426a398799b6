package enroll

import (
	"errors"
	"fmt"
	"strings"

	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/store"
)

// HeadProjector decodes a stored head version into the gallery's
// Projector (its HeadID is the version's id).
func HeadProjector(h *store.HeadVersion) (gallery.Projector, error) {
	hd, err := head.Unmarshal(h.Weights)
	if err != nil {
		return nil, fmt.Errorf("head %s: %w", h.ID, err)
	}
	return headProjector{hd, h.ID}, nil
}

type headProjector struct {
	*head.Head
	id string
}

func (p headProjector) HeadID() string { return p.id }

// LoadGallery fills g with every person of st (samples and negatives) in
// the matching space of the store's active head (the identity when none is
// active).
func LoadGallery(st *store.Store, g *gallery.Gallery) error {
	var people []gallery.Person
	err := st.View(func(tx *store.Tx) error {
		ps, err := tx.People()
		if err != nil {
			return err
		}
		byID := make(map[string]int, len(ps))
		for _, p := range ps {
			byID[p.ID] = len(people)
			people = append(people, gallery.Person{ID: p.ID, Name: p.Name})
		}
		if err := tx.EachSample(func(s store.Sample) error {
			if i, ok := byID[s.PersonID]; ok {
				people[i].Samples = append(people[i].Samples, gallery.Sample{ID: s.ID, Embedding: s.Embedding, Quality: s.Quality})
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.EachNegative(func(n store.Negative) error {
			if i, ok := byID[n.PersonID]; ok {
				people[i].Negatives = append(people[i].Negatives, gallery.Sample{ID: n.ID, Embedding: n.Embedding})
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load gallery: %w", err)
	}
	// A person without samples (possible only through direct store use)
	// cannot be matched; leave them out.
	kept := people[:0]
	for _, p := range people {
		if len(p.Samples) > 0 {
			kept = append(kept, p)
		}
	}
	h, err := st.ActiveHead()
	if err != nil {
		return fmt.Errorf("load gallery: %w", err)
	}
	var pr gallery.Projector
	if h != nil {
		if pr, err = HeadProjector(h); err != nil {
			return fmt.Errorf("load gallery: %w", err)
		}
	}
	if err := g.SetProjector(pr); err != nil {
		return fmt.Errorf("load gallery: %w", err)
	}
	if err := g.Load(kept); err != nil {
		return fmt.Errorf("load gallery: %w", err)
	}
	return nil
}

// Delete removes a person (by id, or by name when no id matches) from the
// store and the gallery.
func (e *Enroller) Delete(idOrName string) (store.Person, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var p store.Person
	err := e.st.Update(func(tx *store.Tx) (err error) {
		if p, err = tx.FindPerson(idOrName); err != nil {
			return err
		}
		return tx.DeletePerson(p.ID)
	})
	if err != nil {
		return p, storeError(err)
	}
	e.g.Remove(p.ID)
	return p, nil
}

// Rename gives a person (by id or name) a new unique name.
func (e *Enroller) Rename(idOrName, name string) (store.Person, error) {
	if err := store.ValidateName(name); err != nil {
		return store.Person{}, ErrInvalidName.with(nil, "%v", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var p store.Person
	err := e.st.Update(func(tx *store.Tx) (err error) {
		if p, err = tx.FindPerson(idOrName); err != nil {
			return err
		}
		p.Name = strings.TrimSpace(name)
		return tx.PutPerson(&p)
	})
	if err != nil {
		return p, storeError(err)
	}
	if err := e.g.Rename(p.ID, p.Name); err != nil && !errors.Is(err, gallery.ErrPersonNotFound) {
		return p, ErrInternal.with(err, "gallery")
	}
	return p, nil
}

// Feedback records that a face (its raw embedding) is NOT the person: the
// negative sample is stored and the gallery stops accepting faces that are
// nearer to it than to the person (by the margin).
func (e *Enroller) Feedback(idOrName string, raw []float32, source, ref string) (store.Negative, error) {
	if err := e.g.CheckEmbedding(raw); err != nil {
		return store.Negative{}, ErrBadRequest.with(err, "embedding")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var n store.Negative
	err := e.st.Update(func(tx *store.Tx) error {
		p, err := tx.FindPerson(idOrName)
		if err != nil {
			return err
		}
		n = store.Negative{PersonID: p.ID, Embedding: raw, Source: source, Ref: ref}
		return tx.AddNegative(&n)
	})
	if err != nil {
		return n, storeError(err)
	}
	if err := e.g.AddNegative(n.PersonID, gallery.Sample{ID: n.ID, Embedding: raw}); err != nil && !errors.Is(err, gallery.ErrPersonNotFound) {
		return n, ErrBadRequest.with(err, "embedding does not fit the gallery")
	}
	return n, nil
}

// ErrLastSample: a person's last sample cannot be removed (delete the
// person instead).
var ErrLastSample = newError("last_sample", "the person's last sample cannot be removed")

// RemoveSample deletes one sample of a person (it was somebody else) and
// returns it; the person's clusters are recomputed in the same transaction
// and the gallery is refreshed. The last sample cannot be removed
// (ErrLastSample).
func (e *Enroller) RemoveSample(personID, sampleID string) (store.Sample, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var removed store.Sample
	var gp gallery.Person
	err := e.st.Update(func(tx *store.Tx) error {
		p, err := tx.Person(personID)
		if err != nil {
			return err
		}
		all, err := tx.Samples(personID)
		if err != nil {
			return err
		}
		kept := all[:0:0]
		for _, s := range all {
			if s.ID == sampleID {
				removed = s
			} else {
				kept = append(kept, s)
			}
		}
		if removed.ID == "" {
			return ErrBadRequest.with(nil, "sample %q is not a sample of %s", sampleID, personID)
		}
		if len(kept) == 0 {
			return ErrLastSample.with(nil, "sample %s is the last sample of %s: delete the person instead", sampleID, personID)
		}
		negs, err := tx.Negatives(personID)
		if err != nil {
			return err
		}
		gp = galleryPerson(p, kept, negs)
		clusters, err := e.g.ClusterSamples(gp.Samples)
		if err != nil {
			return ErrBadRequest.with(err, "samples do not fit the gallery")
		}
		if err := tx.PutClusters(p.ID, storeClusters(clusters, e.headID())); err != nil {
			return err
		}
		return tx.DeleteSample(personID, sampleID)
	})
	if err != nil {
		return removed, storeError(err)
	}
	if err := e.g.Upsert(gp); err != nil {
		e.opts.Logger.Error("gallery update after sample removal failed", "person", personID, "err", err)
	}
	return removed, nil
}
