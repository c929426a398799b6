package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	badger "github.com/dgraph-io/badger/v4"
)

// MaxNameLen is the longest person name accepted, in bytes.
const MaxNameLen = 200

// ValidateName reports whether name can be a person's name: not empty after
// trimming, at most MaxNameLen bytes of valid UTF-8, no control characters.
func ValidateName(name string) error {
	n := strings.TrimSpace(name)
	switch {
	case n == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(n) > MaxNameLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidName, MaxNameLen)
	case !utf8.ValidString(n):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidName)
	case strings.IndexFunc(n, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: control character", ErrInvalidName)
	}
	return nil
}

// Person returns the person with the id.
func (tx *Tx) Person(id string) (Person, error) {
	if !validID(id) {
		return Person{}, fmt.Errorf("person %q: %w", id, ErrPersonNotFound)
	}
	b, err := tx.get(personKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Person{}, fmt.Errorf("person %q: %w", id, ErrPersonNotFound)
	}
	if err != nil {
		return Person{}, err
	}
	var p Person
	if err := json.Unmarshal(b, &p); err != nil {
		return Person{}, fmt.Errorf("person %q: %w: %v", id, ErrCorrupt, err)
	}
	return p, nil
}

// PersonByName returns the person with the name (case-insensitive).
func (tx *Tx) PersonByName(name string) (Person, error) {
	if normName(name) == "" {
		return Person{}, fmt.Errorf("name %q: %w", name, ErrPersonNotFound)
	}
	id, err := tx.get(nameKey(name))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Person{}, fmt.Errorf("name %q: %w", name, ErrPersonNotFound)
	}
	if err != nil {
		return Person{}, err
	}
	return tx.Person(string(id))
}

// FindPerson resolves a person by id, else by name.
func (tx *Tx) FindPerson(idOrName string) (Person, error) {
	p, err := tx.Person(idOrName)
	if errors.Is(err, ErrPersonNotFound) {
		if p, err2 := tx.PersonByName(idOrName); err2 == nil {
			return p, nil
		}
		return Person{}, fmt.Errorf("%q: %w (no id or name matches)", idOrName, ErrPersonNotFound)
	}
	return p, err
}

// People returns every person, sorted by name.
func (tx *Tx) People() ([]Person, error) {
	var out []Person
	err := tx.scan([]byte(prefixPerson), true, func(k, v []byte) error {
		var p Person
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("%w: person %q: %v", ErrCorrupt, k, err)
		}
		out = append(out, p)
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if a, b := normName(out[i].Name), normName(out[j].Name); a != b {
			return a < b
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

// PutPerson creates or updates a person: a new one gets an id and Created
// when they are empty; Updated is set to now. The name must be valid and
// not used by another person.
func (tx *Tx) PutPerson(p *Person) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if err := ValidateName(p.Name); err != nil {
		return err
	}
	p.Name = strings.TrimSpace(p.Name)
	now := time.Now().UTC()
	if p.ID == "" {
		p.ID = NewID()
	}
	if !validID(p.ID) {
		return fmt.Errorf("person id %q: invalid", p.ID)
	}
	old, err := tx.Person(p.ID)
	switch {
	case err == nil:
		if p.Created.IsZero() {
			p.Created = old.Created
		}
		if normName(old.Name) != normName(p.Name) {
			if err := tx.txn.Delete(nameKey(old.Name)); err != nil {
				return err
			}
		}
	case errors.Is(err, ErrPersonNotFound):
		if p.Created.IsZero() {
			p.Created = now
		}
	default:
		return err
	}
	owner, err := tx.get(nameKey(p.Name))
	switch {
	case err == nil && string(owner) != p.ID:
		return fmt.Errorf("%q: %w", p.Name, ErrNameTaken)
	case err != nil && !errors.Is(err, badger.ErrKeyNotFound):
		return err
	}
	p.Updated = now
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := tx.txn.Set(personKey(p.ID), b); err != nil {
		return err
	}
	return tx.txn.Set(nameKey(p.Name), []byte(p.ID))
}

// DeletePerson removes the person with every sample, chip, crop, negative,
// staged vector, experience face and cluster.
func (tx *Tx) DeletePerson(id string) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	p, err := tx.Person(id)
	if err != nil {
		return err
	}
	for _, prefix := range []string{prefixSample, prefixChip, prefixCrop, prefixNegative, prefixNegCrop, prefixStaged} {
		if err := tx.deletePrefix([]byte(prefix + id + "/")); err != nil {
			return err
		}
	}
	if err := tx.deleteExperienceOf(id); err != nil {
		return err
	}
	for _, k := range [][]byte{clustersKey(id), nameKey(p.Name), personKey(id)} {
		if err := tx.txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Images are the pictures optionally stored with a sample, PNG-encoded.
type Images struct {
	// Chip is the face chip the sample was embedded from (Sample.HasChip).
	Chip []byte
	// Crop is the face aligned to face.CropTemplate (Sample.HasCrop), from
	// which another backbone's chip can be cut: it must be a PNG (lossless).
	Crop []byte
}

// AddSample stores a sample of an existing person (and its face chip when
// chip is not nil). A missing id or time is filled in.
func (tx *Tx) AddSample(s *Sample, chip []byte) error {
	return tx.AddSampleWith(s, Images{Chip: chip})
}

// AddSampleWith is AddSample with the sample's chip and crop (either may be
// nil): the sample and its images are written together, and HasChip and
// HasCrop say which were.
func (tx *Tx) AddSampleWith(s *Sample, img Images) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if _, err := tx.Person(s.PersonID); err != nil {
		return err
	}
	if err := validEmbedding(s.Embedding); err != nil {
		return err
	}
	if img.Crop != nil {
		if err := validPNG(img.Crop); err != nil {
			return fmt.Errorf("crop: %w", err)
		}
	}
	if s.ID == "" {
		s.ID = NewID()
	}
	if !validID(s.ID) {
		return fmt.Errorf("sample id %q: invalid", s.ID)
	}
	if s.Created.IsZero() {
		s.Created = time.Now().UTC()
	}
	s.HasChip = img.Chip != nil
	s.HasCrop = img.Crop != nil
	b, err := s.marshal()
	if err != nil {
		return err
	}
	if err := tx.txn.Set(sampleKey(s.PersonID, s.ID), b); err != nil {
		return err
	}
	if img.Chip != nil {
		if err := tx.txn.Set(chipKey(s.PersonID, s.ID), img.Chip); err != nil {
			return err
		}
	}
	if img.Crop != nil {
		return tx.txn.Set(cropKey(s.PersonID, s.ID), img.Crop)
	}
	return nil
}

// validPNG checks that b starts like a PNG image (the header and size; the
// pixels are decoded only when they are used).
func validPNG(b []byte) error {
	if _, err := png.DecodeConfig(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("not a PNG image: %w", err)
	}
	return nil
}

// DeleteSample removes one sample (with its chip, crop and staged vector).
func (tx *Tx) DeleteSample(personID, sampleID string) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if _, err := tx.txn.Get(sampleKey(personID, sampleID)); err != nil {
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("sample %q of person %q: %w", sampleID, personID, ErrSampleNotFound)
		}
		return err
	}
	for _, k := range [][]byte{sampleKey(personID, sampleID), chipKey(personID, sampleID),
		cropKey(personID, sampleID), stagedKey(StagedSample, personID, sampleID)} {
		if err := tx.txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Sample returns one sample of a person.
func (tx *Tx) Sample(personID, sampleID string) (Sample, error) {
	b, err := tx.get(sampleKey(personID, sampleID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Sample{}, fmt.Errorf("sample %q of person %q: %w", sampleID, personID, ErrSampleNotFound)
	}
	if err != nil {
		return Sample{}, err
	}
	return unmarshalSample(b)
}

// SetSampleEmbedding replaces a sample's raw embedding and backbone (a
// re-embedding by another backbone); its id, quality, source and images
// stay. The person's stored clusters are left to the caller.
func (tx *Tx) SetSampleEmbedding(personID, sampleID, backbone string, v []float32) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if err := validEmbedding(v); err != nil {
		return err
	}
	s, err := tx.Sample(personID, sampleID)
	if err != nil {
		return err
	}
	s.Embedding, s.Backbone = v, backbone
	b, err := s.marshal()
	if err != nil {
		return err
	}
	return tx.txn.Set(sampleKey(personID, sampleID), b)
}

// Samples returns the person's samples in creation order.
func (tx *Tx) Samples(personID string) ([]Sample, error) {
	var out []Sample
	err := tx.scan([]byte(prefixSample+personID+"/"), true, func(_, v []byte) error {
		s, err := unmarshalSample(v)
		if err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// EachSample calls fn with every sample of every person, grouped by person.
func (tx *Tx) EachSample(fn func(Sample) error) error {
	return tx.scan([]byte(prefixSample), true, func(_, v []byte) error {
		s, err := unmarshalSample(v)
		if err != nil {
			return err
		}
		return fn(s)
	})
}

// SampleCount returns how many samples the person has.
func (tx *Tx) SampleCount(personID string) (int, error) {
	n := 0
	err := tx.scan([]byte(prefixSample+personID+"/"), false, func(_, _ []byte) error { n++; return nil })
	return n, err
}

// Chip returns a sample's stored face chip (PNG), or nil when none was kept.
func (tx *Tx) Chip(personID, sampleID string) ([]byte, error) {
	return tx.optional(chipKey(personID, sampleID))
}

// Crop returns a sample's stored face crop (PNG, the face aligned to
// face.CropTemplate), or nil when none was kept.
func (tx *Tx) Crop(personID, sampleID string) ([]byte, error) {
	return tx.optional(cropKey(personID, sampleID))
}

// NegativeCrop returns a negative's stored face crop (PNG), or nil when
// none was kept.
func (tx *Tx) NegativeCrop(personID, negativeID string) ([]byte, error) {
	return tx.optional(negCropKey(personID, negativeID))
}

// optional returns the value at key, nil when there is none.
func (tx *Tx) optional(key []byte) ([]byte, error) {
	b, err := tx.get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	return b, err
}

// AddNegative stores a "this face is not the person" sample.
func (tx *Tx) AddNegative(n *Negative) error { return tx.AddNegativeWith(n, nil) }

// AddNegativeWith is AddNegative with the face's crop (PNG, as in
// Images.Crop; nil: none), written together; HasCrop says whether it was.
func (tx *Tx) AddNegativeWith(n *Negative, crop []byte) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if _, err := tx.Person(n.PersonID); err != nil {
		return err
	}
	if err := validEmbedding(n.Embedding); err != nil {
		return err
	}
	if crop != nil {
		if err := validPNG(crop); err != nil {
			return fmt.Errorf("crop: %w", err)
		}
	}
	if n.ID == "" {
		n.ID = NewID()
	}
	if !validID(n.ID) {
		return fmt.Errorf("negative id %q: invalid", n.ID)
	}
	if n.Created.IsZero() {
		n.Created = time.Now().UTC()
	}
	n.HasCrop = crop != nil
	b, err := n.marshal()
	if err != nil {
		return err
	}
	if err := tx.txn.Set(negativeKey(n.PersonID, n.ID), b); err != nil {
		return err
	}
	if crop != nil {
		return tx.txn.Set(negCropKey(n.PersonID, n.ID), crop)
	}
	return nil
}

// Negative returns one negative sample of a person.
func (tx *Tx) Negative(personID, negativeID string) (Negative, error) {
	b, err := tx.get(negativeKey(personID, negativeID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Negative{}, fmt.Errorf("negative %q of person %q: %w", negativeID, personID, ErrSampleNotFound)
	}
	if err != nil {
		return Negative{}, err
	}
	return unmarshalNegative(b)
}

// SetNegativeEmbedding replaces a negative's raw embedding and backbone,
// as SetSampleEmbedding.
func (tx *Tx) SetNegativeEmbedding(personID, negativeID, backbone string, v []float32) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if err := validEmbedding(v); err != nil {
		return err
	}
	n, err := tx.Negative(personID, negativeID)
	if err != nil {
		return err
	}
	n.Embedding, n.Backbone = v, backbone
	b, err := n.marshal()
	if err != nil {
		return err
	}
	return tx.txn.Set(negativeKey(personID, negativeID), b)
}

// Negatives returns the person's negative samples.
func (tx *Tx) Negatives(personID string) ([]Negative, error) {
	var out []Negative
	err := tx.scan([]byte(prefixNegative+personID+"/"), true, func(_, v []byte) error {
		n, err := unmarshalNegative(v)
		if err != nil {
			return err
		}
		out = append(out, n)
		return nil
	})
	return out, err
}

// EachNegative calls fn with every negative sample of every person.
func (tx *Tx) EachNegative(fn func(Negative) error) error {
	return tx.scan([]byte(prefixNegative), true, func(_, v []byte) error {
		n, err := unmarshalNegative(v)
		if err != nil {
			return err
		}
		return fn(n)
	})
}

// PutClusters replaces the person's clusters.
func (tx *Tx) PutClusters(personID string, c Clusters) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if _, err := tx.Person(personID); err != nil {
		return err
	}
	if c.Updated.IsZero() {
		c.Updated = time.Now().UTC()
	}
	b, err := c.marshal()
	if err != nil {
		return err
	}
	return tx.txn.Set(clustersKey(personID), b)
}

// DeleteClusters removes the person's stored clusters (they are stale:
// their vectors changed space). Clusters then reads empty until they are
// stored again.
func (tx *Tx) DeleteClusters(personID string) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	return tx.txn.Delete(clustersKey(personID))
}

// Clusters returns the person's clusters (empty when none were stored).
func (tx *Tx) Clusters(personID string) (Clusters, error) {
	b, err := tx.get(clustersKey(personID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Clusters{}, nil
	}
	if err != nil {
		return Clusters{}, err
	}
	return unmarshalClusters(b)
}

// Store-level shortcuts, one transaction each.

// Person returns the person with the id.
func (s *Store) Person(id string) (p Person, err error) {
	err = s.View(func(tx *Tx) error { p, err = tx.Person(id); return err })
	return p, err
}

// FindPerson resolves a person by id, else by name (case-insensitive).
func (s *Store) FindPerson(idOrName string) (p Person, err error) {
	err = s.View(func(tx *Tx) error { p, err = tx.FindPerson(idOrName); return err })
	return p, err
}

// People returns every person, sorted by name.
func (s *Store) People() (ps []Person, err error) {
	err = s.View(func(tx *Tx) error { ps, err = tx.People(); return err })
	return ps, err
}

// Samples returns a person's samples.
func (s *Store) Samples(personID string) (ss []Sample, err error) {
	err = s.View(func(tx *Tx) error { ss, err = tx.Samples(personID); return err })
	return ss, err
}

// RenamePerson gives a person a new (unique) name.
func (s *Store) RenamePerson(id, name string) (p Person, err error) {
	err = s.Update(func(tx *Tx) error {
		if p, err = tx.Person(id); err != nil {
			return err
		}
		p.Name = name
		return tx.PutPerson(&p)
	})
	return p, err
}

// DeletePerson removes a person and everything stored about them.
func (s *Store) DeletePerson(id string) error {
	return s.Update(func(tx *Tx) error { return tx.DeletePerson(id) })
}
