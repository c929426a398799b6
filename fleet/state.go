package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edged-dev/edged/store"
)

// The fleet's state, in the store's fleet key space (store.Tx.FleetGet and
// friends), so that it commits with the people it describes:
//
//	hlc                   the clock's last timestamp (text): monotonic
//	                      across restarts
//	r/<person>            the person's merged record (JSON, normal form)
//	a/<person>            what this device last wrote into its store for
//	                      the person (applied): how local changes are told
//	                      from the fleet's
//	q/<person>            the record waits to be published; the value is a
//	                      nonce, so the publisher only clears the entry it
//	                      published (a newer change re-queues it)
//	k/<person>/<sample>   a shared crop received (PNG), kept until the
//	                      sample is re-embedded here
//	qk/<person>/<sample>  a crop to publish ("p") or to clear ("d")
//	m/<device>            the last member record seen of a device
//	x/<person>            the backbones whose samples were reported
//	                      unusable here (report once)
//	stat                  counters for `edged fleet status` (JSON)
const (
	keyHLC      = "hlc"
	keyStat     = "stat"
	prefRecord  = "r/"
	prefApplied = "a/"
	prefQueue   = "q/"
	prefCrop    = "k/"
	prefCropQ   = "qk/"
	prefMember  = "m/"
	prefSkip    = "x/"
)

// applied is what this device wrote into its store for a person: the
// local name (which differs from the fleet's only on a name clash), the
// samples and negatives with the backbone of the vector written, and the
// Updated time of the clusters seen. A difference between the store and
// this is a local change, to be published.
type applied struct {
	Name      string            `json:"name"`
	Samples   map[string]string `json:"samples,omitempty"`
	Negatives map[string]string `json:"negatives,omitempty"`
	Clusters  time.Time         `json:"clusters,omitzero"`
}

func getJSON(tx *store.Tx, key string, v any) (bool, error) {
	b, err := tx.FleetGet(key)
	if err != nil || b == nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("fleet state %s: %w", key, err)
	}
	return true, nil
}

func putJSON(tx *store.Tx, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.FleetPut(key, b)
}

func loadRecord(tx *store.Tx, id string) (*Record, error) {
	b, err := tx.FleetGet(prefRecord + id)
	if err != nil || b == nil {
		return nil, err
	}
	r, err := unmarshalRecord(b)
	if err != nil {
		return nil, fmt.Errorf("fleet state of %s: %w", id, err)
	}
	return r, nil
}

func saveRecord(tx *store.Tx, r *Record) error {
	b, err := marshalRecord(r)
	if err != nil {
		return err
	}
	return tx.FleetPut(prefRecord+r.ID, b)
}

func loadApplied(tx *store.Tx, id string) (*applied, error) {
	var a applied
	ok, err := getJSON(tx, prefApplied+id, &a)
	if !ok || err != nil {
		return nil, err
	}
	return &a, nil
}

// local is a person as the device's store holds them.
type local struct {
	exists    bool
	person    store.Person
	samples   []store.Sample
	negatives []store.Negative
	clusters  store.Clusters
}

func readLocal(tx *store.Tx, id string) (local, error) {
	p, err := tx.Person(id)
	if errors.Is(err, store.ErrPersonNotFound) {
		return local{}, nil
	}
	if err != nil {
		return local{}, err
	}
	l := local{exists: true, person: p}
	if l.samples, err = tx.Samples(id); err != nil {
		return l, err
	}
	if l.negatives, err = tx.Negatives(id); err != nil {
		return l, err
	}
	l.clusters, err = tx.Clusters(id)
	return l, err
}

// counters persisted for status (the live ones are in metrics).
type persisted struct {
	Conflicts uint64    `json:"conflicts"`
	Applied   uint64    `json:"applied"`
	Refused   uint64    `json:"refused"`
	LastSync  time.Time `json:"last_sync,omitzero"`
	Backbone  string    `json:"backbone,omitempty"`
}
