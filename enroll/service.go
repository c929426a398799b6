package enroll

import (
	"errors"
	"fmt"
	"strings"

	"github.com/edged-dev/edged/face"
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
	return headProjector{hd, h.ID, h.Metrics[MetricDistanceScale]}, nil
}

// MetricDistanceScale is the key of a head version's Metrics that holds the
// ratio of its matching space's distances to the raw backbone's (measured by
// the fine-tune on its training data): the gallery scales its calibration
// prior by it (gallery.DistanceScaler). Absent: 1.
const MetricDistanceScale = "distance_scale"

// ActiveProjector returns the gallery projector of the store's active head
// when that head was trained for backbone ("" reads as
// store.LegacyBackbone); nil (the identity) when no head is active or the
// active one belongs to another backbone (its weights do not fit this
// backbone's dimension).
func ActiveProjector(st *store.Store, backbone string) (gallery.Projector, error) {
	h, err := st.ActiveHead()
	if err != nil || h == nil || h.BackboneID() != store.BackboneOf(backbone) {
		return nil, err
	}
	return HeadProjector(h)
}

type headProjector struct {
	*head.Head
	id    string
	scale float64
}

func (p headProjector) HeadID() string { return p.id }

// DistanceScale implements gallery.DistanceScaler (0: none recorded).
func (p headProjector) DistanceScale() float64 { return p.scale }

// LoadGallery fills g with the people of st in the matching space of the
// store's active head (the identity when none is active), using only the
// samples and negatives of the backbone with id backbone ("" reads as
// store.LegacyBackbone): vectors of another backbone are never mixed in.
// The report lists, per person, what was left out (with a crop: Reembed can
// convert it; without: the person must be enrolled again) and an active
// head of another backbone, which is not applied.
//
// Stored clusters are only for display (the gallery clusters the samples
// itself): those a re-embedding deleted are written back from the gallery,
// unless the store is read-only (they then stay missing until the person's
// next enrollment).
func LoadGallery(st *store.Store, g *gallery.Gallery, backbone string) (LoadReport, error) {
	rep := LoadReport{Backbone: store.BackboneOf(backbone)}
	var people []gallery.Person
	var missing []string // loaded people without stored clusters
	err := st.View(func(tx *store.Tx) error {
		ps, err := tx.People()
		if err != nil {
			return err
		}
		tl := newTally(rep.Backbone, ps)
		byID := make(map[string]int, len(ps))
		for _, p := range ps {
			byID[p.ID] = len(people)
			people = append(people, gallery.Person{ID: p.ID, Name: p.Name})
		}
		if err := tx.EachSample(func(s store.Sample) error {
			i, ok := byID[s.PersonID]
			if ok && tl.sample(s) {
				people[i].Samples = append(people[i].Samples, gallery.Sample{ID: s.ID, Embedding: s.Embedding, Quality: s.Quality})
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.EachNegative(func(n store.Negative) error {
			i, ok := byID[n.PersonID]
			if ok && tl.negative(n) {
				people[i].Negatives = append(people[i].Negatives, gallery.Sample{ID: n.ID, Embedding: n.Embedding})
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.EachExperience(func(x store.Experience) error {
			if i, ok := byID[x.PersonID]; ok && x.BackboneID() == rep.Backbone {
				people[i].Experience = append(people[i].Experience, gallery.Sample{ID: x.ID, Embedding: x.Embedding, Quality: x.Quality})
				rep.Experience++
			}
			return nil
		}); err != nil {
			return err
		}
		rep.Reembeddable, rep.NoCrop = tl.lists()
		for _, p := range people {
			if len(p.Samples) == 0 {
				continue
			}
			c, err := tx.Clusters(p.ID)
			if err != nil {
				return err
			}
			if len(c.Clusters) == 0 {
				missing = append(missing, p.ID)
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("load gallery: %w", err)
	}
	// A person without samples of this backbone (or at all, possible only
	// through direct store use) cannot be matched; leave them out.
	kept := people[:0]
	for _, p := range people {
		if len(p.Samples) > 0 {
			kept = append(kept, p)
			rep.People++
			rep.Samples += len(p.Samples)
			rep.Negatives += len(p.Negatives)
		}
	}
	h, err := st.ActiveHead()
	if err != nil {
		return rep, fmt.Errorf("load gallery: %w", err)
	}
	var pr gallery.Projector
	switch {
	case h != nil && h.BackboneID() != rep.Backbone:
		// It projects the other backbone's dimension: useless here.
		rep.HeadIgnored, rep.HeadBackbone = h.ID, h.BackboneID()
	case h != nil:
		if pr, err = HeadProjector(h); err != nil {
			return rep, fmt.Errorf("load gallery: %w", err)
		}
	}
	if err := g.SetProjector(pr); err != nil {
		return rep, fmt.Errorf("load gallery: %w", err)
	}
	// The faces of the unknown-N clusters are the camera's strangers: they
	// calibrate the threshold (gallery.SetStrangers).
	us, err := st.Unknowns()
	if err != nil {
		return rep, fmt.Errorf("load gallery: %w", err)
	}
	var strangers [][]float32
	for _, u := range us {
		for _, s := range u.Samples {
			if s.BackboneID() == rep.Backbone {
				strangers = append(strangers, s.Embedding)
			}
		}
	}
	g.SetStrangers(strangers)
	if err := g.Load(kept); err != nil {
		return rep, fmt.Errorf("load gallery: %w", err)
	}
	if len(missing) > 0 && !st.ReadOnly() {
		n, err := restoreClusters(st, g, missing)
		rep.ClustersRestored = n
		if err != nil {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("could not store the recomputed clusters of %d people (shown by edged people; matching is not affected): %v", len(missing), err))
		}
	}
	return rep, nil
}

// restoreClusters stores the gallery's clusters of the people whose stored
// clusters are missing (still missing: an enrollment in between wrote
// fresher ones).
func restoreClusters(st *store.Store, g *gallery.Gallery, ids []string) (int, error) {
	n := 0
	err := st.Update(func(tx *store.Tx) error {
		n = 0
		for _, id := range ids {
			all, ok := g.PersonClusters(id)
			if !ok {
				continue
			}
			var cs []gallery.Cluster
			for _, c := range all {
				if !c.Experience { // the stored clusters are the samples'
					cs = append(cs, c)
				}
			}
			if c, err := tx.Clusters(id); err != nil || len(c.Clusters) > 0 {
				if err != nil {
					return err
				}
				continue
			}
			if err := tx.PutClusters(id, storeClusters(cs, g.ProjectorID())); err != nil {
				if errors.Is(err, store.ErrPersonNotFound) {
					continue
				}
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
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
	e.changed(p.ID)
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
	e.changed(p.ID)
	if err := e.g.Rename(p.ID, p.Name); err != nil && !errors.Is(err, gallery.ErrPersonNotFound) {
		return p, ErrInternal.with(err, "gallery")
	}
	return p, nil
}

// Feedback records that a face (its raw embedding) is NOT the person: the
// negative sample is stored and the gallery stops accepting faces that are
// nearer to it than to the person (by the margin).
func (e *Enroller) Feedback(idOrName string, raw []float32, source, ref string) (store.Negative, error) {
	return e.FeedbackFace(idOrName, raw, face.Chip{}, source, ref)
}

// FeedbackFace is Feedback with the face's crop (face.Face.Crop; an empty
// Chip: none), stored with the negative unless Options.DropCrops, so that
// the correction survives a change of backbone (Reembed).
func (e *Enroller) FeedbackFace(idOrName string, raw []float32, crop face.Chip, source, ref string) (store.Negative, error) {
	if err := e.g.CheckEmbedding(raw); err != nil {
		return store.Negative{}, ErrBadRequest.with(err, "embedding")
	}
	cropPNG, err := e.encodeCrop(crop)
	if err != nil {
		return store.Negative{}, ErrInternal.with(err, "encode crop")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var n store.Negative
	err = e.st.Update(func(tx *store.Tx) error {
		p, err := tx.FindPerson(idOrName)
		if err != nil {
			return err
		}
		n = store.Negative{PersonID: p.ID, Embedding: raw, Backbone: e.opts.Backbone, Source: source, Ref: ref}
		return tx.AddNegativeWith(&n, cropPNG)
	})
	if err != nil {
		return n, storeError(err)
	}
	e.changed(n.PersonID)
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
		exp, err := tx.ExperienceOf(personID)
		if err != nil {
			return err
		}
		gp = e.galleryPerson(p, kept, negs)
		gp.Experience = galleryExperience(exp, e.backbone())
		if len(gp.Samples) == 0 {
			// Only samples of another backbone are left: the person leaves
			// the gallery until they are re-embedded or enrolled again.
			if err := tx.DeleteClusters(p.ID); err != nil {
				return err
			}
			return tx.DeleteSample(personID, sampleID)
		}
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
	e.changed(personID)
	if len(gp.Samples) == 0 {
		e.g.Remove(personID)
		return removed, nil
	}
	if err := e.g.Upsert(gp); err != nil {
		e.opts.Logger.Error("gallery update after sample removal failed", "person", personID, "err", err)
	}
	return removed, nil
}
