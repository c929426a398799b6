package enroll

import (
	"errors"
	"fmt"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/store"
)

// Refresh brings the gallery in step with the store for the people with
// these ids after something other than the Enroller changed them (package
// fleet applying another device's changes): a person no longer in the
// store, or without samples of the Enroller's backbone, leaves the
// gallery; the others are upserted with their samples and negatives of
// that backbone, and their clusters are stored when the store has none
// (as LoadGallery does). It is cheaper than LoadGallery for a few people
// and keeps the gallery serving matches meanwhile.
func (e *Enroller) Refresh(ids ...string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(ids) > refreshOneByOne {
		// Each upsert rebuilds the gallery's index: for many people (a new
		// device catching up with its fleet) one load is far cheaper.
		_, err := LoadGallery(e.st, e.g, e.opts.Backbone)
		return err
	}
	var errs []error
	for _, id := range ids {
		var gp gallery.Person
		var found, hasClusters bool
		err := e.st.View(func(tx *store.Tx) error {
			p, err := tx.Person(id)
			if errors.Is(err, store.ErrPersonNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			found = true
			samples, err := tx.Samples(id)
			if err != nil {
				return err
			}
			negs, err := tx.Negatives(id)
			if err != nil {
				return err
			}
			gp = e.galleryPerson(p, samples, negs)
			c, err := tx.Clusters(id)
			hasClusters = len(c.Clusters) > 0
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("refresh %s: %w", id, err))
			continue
		}
		if !found || len(gp.Samples) == 0 {
			e.g.Remove(id)
			continue
		}
		if err := e.g.Upsert(gp); err != nil {
			errs = append(errs, fmt.Errorf("refresh %s: %w", id, err))
			continue
		}
		if hasClusters || e.st.ReadOnly() {
			continue
		}
		if cs, ok := e.g.PersonClusters(id); ok {
			err := e.st.Update(func(tx *store.Tx) error {
				if c, err := tx.Clusters(id); err != nil || len(c.Clusters) > 0 {
					return err
				}
				return tx.PutClusters(id, storeClusters(cs, e.headID()))
			})
			if err != nil && !errors.Is(err, store.ErrPersonNotFound) {
				errs = append(errs, fmt.Errorf("refresh %s: clusters: %w", id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// refreshOneByOne is the most people Refresh upserts one by one; more are
// reloaded with LoadGallery.
const refreshOneByOne = 8

// changed reports committed changes to Options.Changed. The Enroller's
// lock may be held: the callback must not call back into the Enroller
// (fleet's only queues the ids).
func (e *Enroller) changed(ids ...string) {
	if e.opts.Changed != nil {
		e.opts.Changed(ids...)
	}
}

// EmbedCrops computes embeddings of stored-format face crops (PNG, the
// face aligned to face.CropTemplate, as store.Images.Crop) with the
// Embedder, cutting each backbone chip with chipFromCrop (as
// ReembedOptions.ChipFromCrop): package fleet's Reembedder, for samples
// another device of the fleet shared with their crops. One vector per
// crop, in order; any bad crop fails the batch.
func EmbedCrops(crops [][]byte, chipFromCrop func(face.Chip) (face.Chip, error), emb Embedder) ([][]float32, error) {
	chips := make([]face.Chip, len(crops))
	for i, b := range crops {
		crop, err := decodeCrop(b)
		if err != nil {
			return nil, fmt.Errorf("crop %d: %w", i, err)
		}
		if chips[i], err = chipFromCrop(crop); err != nil {
			return nil, fmt.Errorf("crop %d: %w", i, err)
		}
	}
	embs, err := emb.Embed(chips)
	if err != nil {
		return nil, err
	}
	if len(embs) != len(chips) {
		return nil, fmt.Errorf("embedder returned %d vectors for %d chips", len(embs), len(chips))
	}
	out := make([][]float32, len(embs))
	for i, e := range embs {
		out[i] = []float32(e)
	}
	return out, nil
}
