package store

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Device experience: in-domain faces of enrolled people that the device
// labelled itself (frames of camera tracks recognised with high confidence,
// package service's Experience). They are kept apart from the samples: the
// gallery clusters them separately (they never move the enrollment
// clusters or the threshold fitted on them) and the fine-tune pairs them
// with the enrollment samples across domains. Bounded by the writer
// (service.ExperienceOptions); deleted with their person.
//
//	x/<person>/<id>     Experience, JSON with its raw vector
//	xcr/<person>/<id>   its face crop (face.CropTemplate), PNG, when kept
const (
	prefixExperience     = "x/"
	prefixExperienceCrop = "xcr/"
)

func experienceKey(person, id string) []byte {
	return []byte(prefixExperience + person + "/" + id)
}
func experienceCropKey(person, id string) []byte {
	return []byte(prefixExperienceCrop + person + "/" + id)
}

// Experience is one in-domain face of an enrolled person, from a camera
// track the device recognised itself.
type Experience struct {
	ID        string    `json:"id"`
	PersonID  string    `json:"person_id"`
	Embedding []float32 `json:"-"`                  // raw backbone vector
	Backbone  string    `json:"backbone,omitempty"` // as Sample.Backbone
	Quality   float32   `json:"quality"`
	// Ref is the track, "camera/track": frames of one track share it (the
	// fine-tune's same-track pairs, and what feedback on the track finds).
	Ref string `json:"ref"`
	// Confidence is the track decision's calibrated confidence.
	Confidence float64   `json:"confidence"`
	Created    time.Time `json:"created"`
	HasCrop    bool      `json:"has_crop,omitempty"`
}

// BackboneID is the experience's backbone, LegacyBackbone when none was
// recorded.
func (x Experience) BackboneID() string { return BackboneOf(x.Backbone) }

type experienceJSON struct {
	Experience
	Vec string `json:"vec"`
}

func unmarshalExperience(b []byte) (Experience, error) {
	var j experienceJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Experience{}, fmt.Errorf("%w: experience: %v", ErrCorrupt, err)
	}
	v, err := decodeVec(j.Vec)
	j.Experience.Embedding = v
	return j.Experience, err
}

// AddExperience stores an in-domain face of an existing person, with its
// crop (PNG) when crop is not nil. A missing id or time is filled in.
func (tx *Tx) AddExperience(x *Experience, crop []byte) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if _, err := tx.Person(x.PersonID); err != nil {
		return err
	}
	if err := validEmbedding(x.Embedding); err != nil {
		return err
	}
	if crop != nil {
		if err := validPNG(crop); err != nil {
			return fmt.Errorf("crop: %w", err)
		}
	}
	if x.ID == "" {
		x.ID = NewID()
	}
	if !validID(x.ID) {
		return fmt.Errorf("experience id %q: invalid", x.ID)
	}
	if x.Created.IsZero() {
		x.Created = time.Now().UTC()
	}
	x.HasCrop = crop != nil
	b, err := json.Marshal(experienceJSON{*x, encodeVec(x.Embedding)})
	if err != nil {
		return err
	}
	if err := tx.txn.Set(experienceKey(x.PersonID, x.ID), b); err != nil {
		return err
	}
	if crop != nil {
		return tx.txn.Set(experienceCropKey(x.PersonID, x.ID), crop)
	}
	return nil
}

// DeleteExperience removes one experience face (and its crop); a missing
// one is not an error.
func (tx *Tx) DeleteExperience(personID, id string) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if err := tx.txn.Delete(experienceKey(personID, id)); err != nil {
		return err
	}
	return tx.txn.Delete(experienceCropKey(personID, id))
}

// ExperienceOf returns the person's experience faces, oldest first.
func (tx *Tx) ExperienceOf(personID string) ([]Experience, error) {
	var out []Experience
	err := tx.scan([]byte(prefixExperience+personID+"/"), true, func(_, v []byte) error {
		x, err := unmarshalExperience(v)
		if err != nil {
			return err
		}
		out = append(out, x)
		return nil
	})
	sort.SliceStable(out, func(a, b int) bool { return out[a].Created.Before(out[b].Created) })
	return out, err
}

// EachExperience calls fn with every experience face, grouped by person.
func (tx *Tx) EachExperience(fn func(Experience) error) error {
	return tx.scan([]byte(prefixExperience), true, func(_, v []byte) error {
		x, err := unmarshalExperience(v)
		if err != nil {
			return err
		}
		return fn(x)
	})
}

// ExperienceCrop returns an experience face's crop (PNG), nil when none.
func (tx *Tx) ExperienceCrop(personID, id string) ([]byte, error) {
	return tx.optional(experienceCropKey(personID, id))
}

// deleteExperienceOf removes every experience face of a person
// (DeletePerson).
func (tx *Tx) deleteExperienceOf(id string) error {
	for _, p := range []string{prefixExperience, prefixExperienceCrop} {
		if err := tx.deletePrefix([]byte(p + id + "/")); err != nil {
			return err
		}
	}
	return nil
}

// Experience returns every experience face (Store.View shortcut).
func (s *Store) Experience() (out []Experience, err error) {
	err = s.View(func(tx *Tx) error {
		return tx.EachExperience(func(x Experience) error { out = append(out, x); return nil })
	})
	return out, err
}
