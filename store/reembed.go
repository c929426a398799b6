package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// The primitives of a re-embedding (package enroll's Reembed drives them):
// vectors computed by the target backbone are staged under rb/ in small
// transactions, the state under m/reembed says a re-embedding is under way,
// and the switch replaces each item's vector (SetSampleEmbedding,
// SetNegativeEmbedding) and deletes its staged copy.

// PutStaged stages a re-embedded vector (replacing one staged before for
// the same item). The item must exist.
func (tx *Tx) PutStaged(v StagedVector) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if err := validEmbedding(v.Embedding); err != nil {
		return err
	}
	if v.Backbone == "" {
		return errors.New("staged vector: no backbone")
	}
	var key []byte
	switch v.Kind {
	case StagedSample:
		key = sampleKey(v.PersonID, v.ItemID)
	case StagedNegative:
		key = negativeKey(v.PersonID, v.ItemID)
	default:
		return fmt.Errorf("staged vector: unknown kind %q", v.Kind)
	}
	if _, err := tx.txn.Get(key); err != nil {
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("stage %s %q of person %q: %w", v.Kind, v.ItemID, v.PersonID, ErrSampleNotFound)
		}
		return err
	}
	b, err := v.marshal()
	if err != nil {
		return err
	}
	return tx.txn.Set(stagedKey(v.Kind, v.PersonID, v.ItemID), b)
}

// Staged returns the staged vector of an item; ok is false when there is
// none.
func (tx *Tx) Staged(kind, personID, itemID string) (v StagedVector, ok bool, err error) {
	b, err := tx.get(stagedKey(kind, personID, itemID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return StagedVector{}, false, nil
	}
	if err != nil {
		return StagedVector{}, false, err
	}
	v, err = unmarshalStaged(b)
	return v, err == nil, err
}

// EachStaged calls fn with every staged vector, grouped by person.
func (tx *Tx) EachStaged(fn func(StagedVector) error) error {
	return tx.scan([]byte(prefixStaged), true, func(_, val []byte) error {
		v, err := unmarshalStaged(val)
		if err != nil {
			return err
		}
		return fn(v)
	})
}

// DeleteStaged removes an item's staged vector (no error when there is
// none).
func (tx *Tx) DeleteStaged(kind, personID, itemID string) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	return tx.txn.Delete(stagedKey(kind, personID, itemID))
}

// ReembedState returns the re-embedding in progress, or nil when none is.
func (tx *Tx) ReembedState() (*ReembedState, error) {
	b, err := tx.get([]byte(keyReembed))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st ReembedState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: re-embedding state: %v", ErrCorrupt, err)
	}
	return &st, nil
}

// PutReembedState records the re-embedding in progress; a zero Started
// gets now.
func (tx *Tx) PutReembedState(st ReembedState) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if st.Target == "" {
		return errors.New("re-embedding state: no target backbone")
	}
	if st.Started.IsZero() {
		st.Started = time.Now().UTC()
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return tx.txn.Set([]byte(keyReembed), b)
}

// DeleteReembedState records that no re-embedding is in progress.
func (tx *Tx) DeleteReembedState() error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	return tx.txn.Delete([]byte(keyReembed))
}
