package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// NewUnknown allocates the next unknown-N number and returns an empty
// Unknown with its id; store it with PutUnknown in the same transaction.
func (tx *Tx) NewUnknown() (Unknown, error) {
	if err := tx.checkWritable(); err != nil {
		return Unknown{}, err
	}
	n := uint64(1)
	b, err := tx.get([]byte(keyUnknownNext))
	switch {
	case err == nil && len(b) == 8:
		n = binary.BigEndian.Uint64(b)
	case err == nil:
		return Unknown{}, fmt.Errorf("%w: bad unknown counter", ErrCorrupt)
	case !errors.Is(err, badger.ErrKeyNotFound):
		return Unknown{}, err
	}
	if err := tx.txn.Set([]byte(keyUnknownNext), be64(n+1)); err != nil {
		return Unknown{}, err
	}
	return Unknown{ID: UnknownID(n), Number: n}, nil
}

// PutUnknown creates or replaces an unknown-face cluster.
func (tx *Tx) PutUnknown(u Unknown) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if u.Number == 0 || u.ID != UnknownID(u.Number) {
		return fmt.Errorf("unknown cluster %q: id and number disagree (use NewUnknown)", u.ID)
	}
	if err := validEmbedding(u.Centroid); err != nil {
		return fmt.Errorf("unknown cluster %q: %w", u.ID, err)
	}
	b, err := u.marshal()
	if err != nil {
		return err
	}
	return tx.txn.Set(unknownKey(u.Number), b)
}

// parseUnknownID returns N of "unknown-N".
func parseUnknownID(id string) (uint64, bool) {
	s, ok := strings.CutPrefix(id, "unknown-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0 && UnknownID(n) == id
}

// Unknown returns the unknown-face cluster with the id ("unknown-N").
func (tx *Tx) Unknown(id string) (Unknown, error) {
	n, ok := parseUnknownID(id)
	if !ok {
		return Unknown{}, fmt.Errorf("%q: %w", id, ErrUnknownNotFound)
	}
	b, err := tx.get(unknownKey(n))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Unknown{}, fmt.Errorf("%q: %w", id, ErrUnknownNotFound)
	}
	if err != nil {
		return Unknown{}, err
	}
	return unmarshalUnknown(b)
}

// Unknowns returns every unknown-face cluster, by number.
func (tx *Tx) Unknowns() ([]Unknown, error) {
	var out []Unknown
	err := tx.scan([]byte(prefixUnknown), true, func(_, v []byte) error {
		u, err := unmarshalUnknown(v)
		if err != nil {
			return err
		}
		out = append(out, u)
		return nil
	})
	return out, err
}

// DeleteUnknown removes an unknown-face cluster (after it was enrolled or
// dismissed) with its crops. Its number is never reused.
func (tx *Tx) DeleteUnknown(id string) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if _, err := tx.Unknown(id); err != nil {
		return err
	}
	n, _ := parseUnknownID(id)
	if err := tx.deletePrefix(unknownCropPrefix(n)); err != nil {
		return err
	}
	return tx.txn.Delete(unknownKey(n))
}

// Unknowns returns every unknown-face cluster.
func (s *Store) Unknowns() (us []Unknown, err error) {
	err = s.View(func(tx *Tx) error { us, err = tx.Unknowns(); return err })
	return us, err
}
