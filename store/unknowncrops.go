package store

import (
	"encoding/binary"
	"fmt"
)

// MaxUnknownCrops is how many face crops an unknown-face cluster keeps:
// a few pictures for a person to recognise the face by (the web page's
// thumbnails), not training data, so the oldest slot is overwritten.
const MaxUnknownCrops = 4

// prefixUnknownCrop starts the keys of unknown clusters' crops (keys.go);
// "uc/" never matches a scan of "u/".
const prefixUnknownCrop = "uc/"

// unknownCropKey is uc/<uint64 BE number>/<slot>; the fixed-width number
// keeps one cluster's crops under one prefix (deleted with the cluster).
func unknownCropKey(n uint64, slot int) []byte {
	return append(unknownCropPrefix(n), byte(slot))
}

func unknownCropPrefix(n uint64) []byte {
	k := make([]byte, len(prefixUnknownCrop)+9)
	copy(k, prefixUnknownCrop)
	binary.BigEndian.PutUint64(k[len(prefixUnknownCrop):], n)
	k[len(k)-1] = '/'
	return k
}

// PutUnknownCrop keeps crop (the face aligned to face.CropTemplate, PNG) as
// one of the cluster's MaxUnknownCrops pictures. The slot is the cluster's
// Count (after the appearance was filed) modulo MaxUnknownCrops, so the
// newest appearances are kept. The cluster must exist: call it after
// PutUnknown, in the same or a later transaction.
func (tx *Tx) PutUnknownCrop(id string, crop []byte) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	u, err := tx.Unknown(id)
	if err != nil {
		return err
	}
	if err := validPNG(crop); err != nil {
		return fmt.Errorf("unknown %s crop: %w", id, err)
	}
	slot := 0
	if u.Count > 0 {
		slot = (u.Count - 1) % MaxUnknownCrops
	}
	return tx.txn.Set(unknownCropKey(u.Number, slot), crop)
}

// UnknownCrop returns picture slot of the cluster (PNG), or nil when the
// slot is empty or the cluster unknown.
func (tx *Tx) UnknownCrop(id string, slot int) ([]byte, error) {
	n, ok := parseUnknownID(id)
	if !ok || slot < 0 || slot >= MaxUnknownCrops {
		return nil, nil
	}
	return tx.optional(unknownCropKey(n, slot))
}

// UnknownCropSlots returns the cluster's filled picture slots, in order.
func (tx *Tx) UnknownCropSlots(id string) ([]int, error) {
	n, ok := parseUnknownID(id)
	if !ok {
		return nil, nil
	}
	var slots []int
	err := tx.scan(unknownCropPrefix(n), false, func(k, _ []byte) error {
		slots = append(slots, int(k[len(k)-1]))
		return nil
	})
	return slots, err
}

// DeleteUnknownCrops removes every picture of the cluster (DeleteUnknown
// does it too).
func (tx *Tx) DeleteUnknownCrops(id string) error {
	if err := tx.checkWritable(); err != nil {
		return err
	}
	n, ok := parseUnknownID(id)
	if !ok {
		return nil
	}
	return tx.deletePrefix(unknownCropPrefix(n))
}

// PutUnknownCrop is Tx.PutUnknownCrop in its own transaction: the hook for
// the unknown-face path, called with the best crop of a track after
// enroll.(*Enroller).ObserveUnknown filed it under id.
func (s *Store) PutUnknownCrop(id string, crop []byte) error {
	return s.Update(func(tx *Tx) error { return tx.PutUnknownCrop(id, crop) })
}
