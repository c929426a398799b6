package enroll

import (
	"fmt"
	"sort"
	"strings"

	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/store"
)

// HeadInfo is a stored head version and what its weights decode to.
type HeadInfo struct {
	store.HeadVersion
	// Layers is the head's number of layers (0 when the weights do not
	// decode).
	Layers int
	// DecodeErr says why the weights do not decode; nil when they do.
	DecodeErr error
}

// Heads manages the stored head versions: list them, activate one, roll
// back, import a head file (`edged model`).
type Heads struct {
	Store *store.Store
}

// Describe decodes h's weights.
func (hs Heads) Describe(h store.HeadVersion) HeadInfo {
	info := HeadInfo{HeadVersion: h}
	if hd, err := head.Unmarshal(h.Weights); err != nil {
		info.DecodeErr = err
	} else {
		info.Layers = hd.NumLayers()
	}
	return info
}

// List returns every head version, oldest first.
func (hs Heads) List() ([]HeadInfo, error) {
	vs, err := hs.Store.Heads()
	if err != nil {
		return nil, err
	}
	out := make([]HeadInfo, len(vs))
	for i, h := range vs {
		out[i] = hs.Describe(h)
	}
	return out, nil
}

// Activate makes the head version id the active one. It refuses weights
// that do not decode (the daemon could not load them: better now than at
// its start-up) and an unknown id (store.ErrHeadNotFound).
func (hs Heads) Activate(id string) (HeadInfo, error) {
	vs, err := hs.Store.Heads()
	if err != nil {
		return HeadInfo{}, err
	}
	for _, h := range vs {
		if h.ID != id {
			continue
		}
		info := hs.Describe(h)
		if info.DecodeErr != nil {
			return info, fmt.Errorf("head %s: %w", id, info.DecodeErr)
		}
		if err := hs.Store.ActivateHead(id); err != nil {
			return info, err
		}
		info.Active = true
		return info, nil
	}
	return HeadInfo{}, fmt.Errorf("head %q: %w", id, store.ErrHeadNotFound)
}

// Rollback activates the version created before the active one (from),
// skipping versions a guard rejected and versions that do not decode; with
// none left, it deactivates every version (back to the frozen network) and
// to is zero. With no version active it returns ErrNoActiveHead.
func (hs Heads) Rollback() (from, to HeadInfo, err error) {
	vs, err := hs.Store.Heads() // oldest first
	if err != nil {
		return HeadInfo{}, HeadInfo{}, err
	}
	cur := -1
	for i, h := range vs {
		if h.Active {
			cur = i
		}
	}
	if cur < 0 {
		return HeadInfo{}, HeadInfo{}, ErrNoActiveHead
	}
	from = hs.Describe(vs[cur])
	for i := cur - 1; i >= 0; i-- {
		h := vs[i]
		if strings.HasPrefix(h.Note, "rejected:") {
			continue
		}
		info := hs.Describe(h)
		if info.DecodeErr != nil {
			continue
		}
		if err := hs.Store.ActivateHead(h.ID); err != nil {
			return from, HeadInfo{}, err
		}
		info.Active = true
		return from, info, nil
	}
	if err := hs.Store.ActivateHead(""); err != nil {
		return from, HeadInfo{}, err
	}
	return from, HeadInfo{}, nil
}

// Import stores head weights read from the file name (written by `edged
// train --out`) as a new version, active when activate, with the note
// ("": "imported from <name>"). dims maps each backbone id to its raw
// embedding dimension: a head projects one backbone's vectors, and its
// input dimension says which. Errors about the weights start with name.
func (hs Heads) Import(name string, weights []byte, dims map[string]int, note string, activate bool) (HeadInfo, error) {
	h, err := head.Unmarshal(weights)
	if err != nil {
		return HeadInfo{}, fmt.Errorf("%s: %w", name, err)
	}
	ids := make([]string, 0, len(dims))
	for id := range dims {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	backbone := ""
	for _, id := range ids {
		if dims[id] == h.Dim() {
			backbone = id
		}
	}
	if backbone == "" {
		return HeadInfo{}, fmt.Errorf("%s: a %d-d head fits no backbone (%s)", name, h.Dim(), strings.Join(ids, ", "))
	}
	if note == "" {
		note = "imported from " + name
	}
	hv := store.HeadVersion{Weights: weights, Note: note, Active: activate, Backbone: backbone}
	if err := hs.Store.Update(func(tx *store.Tx) error { return tx.SaveHead(&hv) }); err != nil {
		return HeadInfo{}, err
	}
	return hs.Describe(hv), nil
}
