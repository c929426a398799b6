package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// SaveHead stores a head version (inactive unless h.Active, in which case
// it becomes the only active one). An empty ID gets a new one; a zero
// Created gets now.
func (s *Store) SaveHead(h HeadVersion) error {
	return s.Update(func(tx *Tx) error { return tx.SaveHead(&h) })
}

// SaveHead is SaveHead inside a transaction; it fills h.ID and h.Created.
func (tx *Tx) SaveHead(h *HeadVersion) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if h.ID == "" {
		h.ID = NewID()
	}
	if !validID(h.ID) {
		return fmt.Errorf("head id %q: invalid", h.ID)
	}
	if h.Created.IsZero() {
		h.Created = time.Now().UTC()
	}
	if h.Active {
		if err := tx.deactivateHeads(h.ID); err != nil {
			return err
		}
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return tx.txn.Set(headKey(h.ID), b)
}

// Heads returns every head version, oldest first.
func (s *Store) Heads() (hs []HeadVersion, err error) {
	err = s.View(func(tx *Tx) error { hs, err = tx.Heads(); return err })
	return hs, err
}

// Heads returns every head version, oldest first.
func (tx *Tx) Heads() ([]HeadVersion, error) {
	var out []HeadVersion
	err := tx.scan([]byte(prefixHead), true, func(k, v []byte) error {
		var h HeadVersion
		if err := json.Unmarshal(v, &h); err != nil {
			return fmt.Errorf("%w: head %q: %v", ErrCorrupt, k, err)
		}
		out = append(out, h)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// ActiveHead returns the active head version, or nil (and no error) when
// none is active: matching then uses the identity (raw vectors, normalised).
func (s *Store) ActiveHead() (*HeadVersion, error) {
	hs, err := s.Heads()
	if err != nil {
		return nil, err
	}
	for i := range hs {
		if hs[i].Active {
			return &hs[i], nil
		}
	}
	return nil, nil
}

// ActivateHead makes the head version with the id the only active one. An
// empty id deactivates every head (back to the identity).
func (s *Store) ActivateHead(id string) error {
	return s.Update(func(tx *Tx) error {
		if id == "" {
			return tx.deactivateHeads("")
		}
		b, err := tx.get(headKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("head %q: %w", id, ErrHeadNotFound)
		}
		if err != nil {
			return err
		}
		var h HeadVersion
		if err := json.Unmarshal(b, &h); err != nil {
			return fmt.Errorf("%w: head %q: %v", ErrCorrupt, id, err)
		}
		h.Active = true
		return tx.SaveHead(&h)
	})
}

func (tx *Tx) deactivateHeads(except string) error {
	hs, err := tx.Heads()
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h.Active && h.ID != except {
			h.Active = false
			b, err := json.Marshal(h)
			if err != nil {
				return err
			}
			if err := tx.txn.Set(headKey(h.ID), b); err != nil {
				return err
			}
		}
	}
	return nil
}
