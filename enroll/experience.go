package enroll

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/store"
)

// ExperienceFace is one in-domain face of a person from a track the device
// recognised itself (package service decides which tracks and frames).
type ExperienceFace struct {
	Embedding []float32 // raw backbone vector
	Quality   float32
	Crop      face.Chip // face.CropTemplate crop; empty: none kept
	Time      time.Time
}

// ExperienceBounds cap the experience kept: MaxPerPerson faces of one
// person and MaxTotal of everybody; past them the least recently seen
// faces (oldest Created) are deleted in the same transaction. Zero: no
// bound.
type ExperienceBounds struct {
	MaxPerPerson, MaxTotal int
}

// AddExperience stores the faces of one track (ref "camera/track") as
// experience of the person, applies the bounds and refreshes the person in
// the gallery (experience clusters apart from the samples'). It returns
// how many faces it stored and how many old ones the bounds evicted.
func (e *Enroller) AddExperience(personID, ref string, confidence float64, faces []ExperienceFace, b ExperienceBounds) (added, evicted int, err error) {
	if len(faces) == 0 {
		return 0, 0, nil
	}
	crops := make([][]byte, len(faces))
	for i, f := range faces {
		if err := e.g.CheckEmbedding(f.Embedding); err != nil {
			return 0, 0, ErrBadRequest.with(err, "experience face %d", i)
		}
		if crops[i], err = e.encodeCrop(f.Crop); err != nil {
			return 0, 0, ErrInternal.with(err, "encode crop")
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var gp gallery.Person
	err = e.st.Update(func(tx *store.Tx) error {
		added, evicted = 0, 0
		for i, f := range faces {
			x := store.Experience{PersonID: personID, Embedding: f.Embedding, Backbone: e.opts.Backbone, Quality: f.Quality,
				Ref: ref, Confidence: confidence, Created: f.Time.UTC()}
			if err := tx.AddExperience(&x, crops[i]); err != nil {
				return err
			}
			added++
		}
		n, err := boundExperience(tx, personID, b)
		if err != nil {
			return err
		}
		evicted = n
		gp, err = e.personFromTx(tx, personID)
		return err
	})
	if err != nil {
		return 0, 0, storeError(err)
	}
	if len(gp.Samples) > 0 {
		if err := e.g.Upsert(gp); err != nil {
			e.opts.Logger.Error("gallery update after experience failed", "person", personID, "err", err)
		}
	}
	return added, evicted, nil
}

// boundExperience deletes the oldest experience faces past the bounds.
func boundExperience(tx *store.Tx, personID string, b ExperienceBounds) (int, error) {
	n := 0
	if b.MaxPerPerson > 0 {
		xs, err := tx.ExperienceOf(personID)
		if err != nil {
			return 0, err
		}
		for _, x := range xs[:max(0, len(xs)-b.MaxPerPerson)] {
			if err := tx.DeleteExperience(x.PersonID, x.ID); err != nil {
				return n, err
			}
			n++
		}
	}
	if b.MaxTotal > 0 {
		var all []store.Experience
		if err := tx.EachExperience(func(x store.Experience) error { all = append(all, x); return nil }); err != nil {
			return n, err
		}
		if len(all) > b.MaxTotal {
			sort.SliceStable(all, func(i, j int) bool { return all[i].Created.Before(all[j].Created) })
			for _, x := range all[:len(all)-b.MaxTotal] {
				if err := tx.DeleteExperience(x.PersonID, x.ID); err != nil {
					return n, err
				}
				n++
			}
		}
	}
	return n, nil
}

// personFromTx reads the person as the gallery holds them: samples,
// negatives and experience of the Enroller's backbone.
func (e *Enroller) personFromTx(tx *store.Tx, personID string) (gallery.Person, error) {
	p, err := tx.Person(personID)
	if err != nil {
		return gallery.Person{}, err
	}
	samples, err := tx.Samples(personID)
	if err != nil {
		return gallery.Person{}, err
	}
	negs, err := tx.Negatives(personID)
	if err != nil {
		return gallery.Person{}, err
	}
	xs, err := tx.ExperienceOf(personID)
	if err != nil {
		return gallery.Person{}, err
	}
	gp := e.galleryPerson(p, samples, negs)
	gp.Experience = galleryExperience(xs, e.backbone())
	return gp, nil
}

// ReassignExperience handles feedback on a track (ref "camera/track"): the
// experience faces filed under personID from that track are deleted, or,
// with to != "", moved to the person with id to (the user said who it
// was). It returns how many faces it found; the gallery is refreshed.
func (e *Enroller) ReassignExperience(personID, ref, to string) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var people []gallery.Person
	n := 0
	err := e.st.Update(func(tx *store.Tx) error {
		n, people = 0, nil
		xs, err := tx.ExperienceOf(personID)
		if err != nil {
			return err
		}
		for _, x := range xs {
			if x.Ref != ref {
				continue
			}
			var crop []byte
			if to != "" && x.HasCrop {
				if crop, err = tx.ExperienceCrop(x.PersonID, x.ID); err != nil {
					return err
				}
			}
			if err := tx.DeleteExperience(x.PersonID, x.ID); err != nil {
				return err
			}
			if to != "" {
				moved := x
				moved.ID, moved.PersonID = "", to
				if err := tx.AddExperience(&moved, crop); err != nil {
					return err
				}
			}
			n++
		}
		if n == 0 {
			return nil
		}
		for _, id := range []string{personID, to} {
			if id == "" {
				continue
			}
			gp, err := e.personFromTx(tx, id)
			if err != nil {
				return err
			}
			people = append(people, gp)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrPersonNotFound) {
			return 0, ErrUnknownPerson.with(nil, "%v", err)
		}
		return 0, storeError(err)
	}
	for _, gp := range people {
		if len(gp.Samples) == 0 {
			continue
		}
		if err := e.g.Upsert(gp); err != nil {
			return n, ErrInternal.with(err, "gallery")
		}
	}
	return n, nil
}

// ExperienceCount returns how many experience faces the store keeps.
func (e *Enroller) ExperienceCount() (int, error) {
	xs, err := e.st.Experience()
	if err != nil {
		return 0, fmt.Errorf("experience: %w", err)
	}
	return len(xs), nil
}
