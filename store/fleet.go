package store

import (
	"errors"
	"fmt"
	"strings"
)

// ErrStopScan, returned by a FleetScan or FleetKeys callback, ends the scan
// without an error. (Kept here, not in errors.go, so that the fleet
// addition is one new file.)
var ErrStopScan = errors.New("stop scan")

// The fleet key space. Package fleet keeps its replication state here: the
// merged record of every replicated person, what it last wrote into the
// people/samples keys, the persons waiting to be published, its hybrid
// logical clock. The store treats the values as opaque bytes; they live in
// the same database so that a local change, its record and its publish
// queue entry commit in one transaction.
//
//	f/<key>                   opaque, owned by package fleet (its keys
//	                          are documented in fleet/state.go)
//
// (This belongs in the table of keys.go; it is kept in this file so that
// the fleet addition touches no other file of the package.)
const prefixFleet = "f/"

func fleetKey(key string) ([]byte, error) {
	if key == "" || strings.ContainsAny(key, "\x00") {
		return nil, fmt.Errorf("fleet key %q: invalid", key)
	}
	return []byte(prefixFleet + key), nil
}

// FleetGet returns the value of a fleet key, or nil (and no error) when
// there is none.
func (tx *Tx) FleetGet(key string) ([]byte, error) {
	k, err := fleetKey(key)
	if err != nil {
		return nil, err
	}
	return tx.optional(k)
}

// FleetPut sets a fleet key.
func (tx *Tx) FleetPut(key string, val []byte) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	k, err := fleetKey(key)
	if err != nil {
		return err
	}
	return tx.txn.Set(k, val)
}

// FleetDelete removes a fleet key; removing one that is not there is not
// an error.
func (tx *Tx) FleetDelete(key string) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	k, err := fleetKey(key)
	if err != nil {
		return err
	}
	return tx.txn.Delete(k)
}

// FleetScan calls fn with every fleet key under prefix (without the
// store's own "f/") and a copy of its value, in key order. fn returning
// ErrStopScan ends the scan early without an error.
func (tx *Tx) FleetScan(prefix string, fn func(key string, val []byte) error) error {
	p := []byte(prefixFleet + prefix)
	return tx.scan(p, true, func(k, v []byte) error {
		err := fn(string(k[len(prefixFleet):]), v)
		if errors.Is(err, ErrStopScan) {
			return errStop
		}
		return err
	})
}

// FleetKeys is FleetScan without the values (a key-only iteration: cheap
// for counting and listing).
func (tx *Tx) FleetKeys(prefix string, fn func(key string) error) error {
	p := []byte(prefixFleet + prefix)
	return tx.scan(p, false, func(k, _ []byte) error {
		err := fn(string(k[len(prefixFleet):]))
		if errors.Is(err, ErrStopScan) {
			return errStop
		}
		return err
	})
}

// DeleteNegative removes one negative sample (with its crop and staged
// vector): another device of a fleet removed it, or the person's cap of
// negatives evicted it.
func (tx *Tx) DeleteNegative(personID, negativeID string) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	if _, err := tx.Negative(personID, negativeID); err != nil {
		return err
	}
	for _, k := range [][]byte{negativeKey(personID, negativeID), negCropKey(personID, negativeID),
		stagedKey(StagedNegative, personID, negativeID)} {
		if err := tx.txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
