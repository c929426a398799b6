package enroll

import (
	"fmt"
	"sort"
	"strings"

	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/store"
)

// HeadInfo is a stored head version, what its weights decode to and
// whether matching can use it.
type HeadInfo struct {
	store.HeadVersion
	// Layers is the head's number of layers (0 when the weights do not
	// decode).
	Layers int
	// DecodeErr says why the weights do not decode; nil when they do.
	DecodeErr error
	// Usable: not rejected by the fine-tune guard, for the Heads' backbone
	// (when it has one) and the weights decode. Why says why not.
	Usable bool
	Why    string
}

// Heads manages the stored head versions: list them, activate one, roll
// back, import a head file. `edged model` and the web page (web/backend)
// both go through it, so they follow the same rules.
type Heads struct {
	Store *store.Store
	// Backbone is the backbone matching runs ("" reads as
	// store.LegacyBackbone): a head trained for another one is not usable.
	// AnyBackbone skips the check (`edged model`, which runs no network).
	Backbone string
}

// AnyBackbone as Heads.Backbone accepts a head of any backbone.
const AnyBackbone = "*"

// UnusableHeadError is Heads.Activate's error for a head version matching
// cannot use: its weights do not decode, or it is another backbone's.
type UnusableHeadError struct {
	ID string
	// Why is the reason in words.
	Why string
	// Err is the decode error (it wraps head.ErrCorrupt, head.ErrChecksum,
	// ...); nil for another backbone's head.
	Err error
}

func (e *UnusableHeadError) Error() string {
	if e.Err != nil {
		return "head " + e.ID + ": " + e.Err.Error()
	}
	return "head " + e.ID + ": " + e.Why
}

// Unwrap returns the decode error.
func (e *UnusableHeadError) Unwrap() error { return e.Err }

// rejected reports whether the fine-tune guard rejected the version (it
// is stored with a note "rejected: <reason>").
func rejected(h store.HeadVersion) bool { return strings.HasPrefix(h.Note, "rejected:") }

// otherBackbone says why h does not fit the Heads' backbone ("" when it
// does).
func (hs Heads) otherBackbone(h store.HeadVersion) string {
	if hs.Backbone == AnyBackbone || h.BackboneID() == store.BackboneOf(hs.Backbone) {
		return ""
	}
	return fmt.Sprintf("trained for the %s backbone; edged runs %s", h.BackboneID(), store.BackboneOf(hs.Backbone))
}

// Describe decodes h's weights and says whether matching can use it.
func (hs Heads) Describe(h store.HeadVersion) HeadInfo {
	info := HeadInfo{HeadVersion: h}
	if hd, err := head.Unmarshal(h.Weights); err != nil {
		info.DecodeErr = err
	} else {
		info.Layers = hd.NumLayers()
	}
	switch other := hs.otherBackbone(h); {
	case rejected(h):
		info.Why = "rejected by the guard (worse on the held-out check)"
	case other != "":
		info.Why = other
	case info.DecodeErr != nil:
		info.Why = "its weights do not decode: " + info.DecodeErr.Error()
	default:
		info.Usable = true
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

// Activate makes the head version id the active one. A version the guard
// rejected may be chosen by hand; weights that do not decode or another
// backbone's head are refused (*UnusableHeadError: the daemon could not
// use them), and an unknown id is store.ErrHeadNotFound.
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
			return info, &UnusableHeadError{ID: id, Why: "its weights do not decode: " + info.DecodeErr.Error(), Err: info.DecodeErr}
		}
		if other := hs.otherBackbone(h); other != "" {
			return info, &UnusableHeadError{ID: id, Why: other}
		}
		if err := hs.Store.ActivateHead(id); err != nil {
			return info, err
		}
		info.Active = true
		return info, nil
	}
	return HeadInfo{}, fmt.Errorf("head %q: %w", id, store.ErrHeadNotFound)
}

// Deactivate makes no version active: matching uses the frozen network.
func (hs Heads) Deactivate() error { return hs.Store.ActivateHead("") }

// Rollback goes from the active version (from) to the newest usable one
// created before it (to); with none, it deactivates every version (back to
// the frozen network) and to is zero. With no version active it returns
// ErrNoActiveHead.
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
		info := hs.Describe(vs[i])
		if !info.Usable {
			continue
		}
		if err := hs.Store.ActivateHead(info.ID); err != nil {
			return from, HeadInfo{}, err
		}
		info.Active = true
		return from, info, nil
	}
	if err := hs.Deactivate(); err != nil {
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
