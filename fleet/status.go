package fleet

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edged-dev/edged/store"
)

// Status is what `edged fleet status` and the MQTT fleet command show.
type Status struct {
	Fleet      string `json:"fleet"`
	Device     string `json:"device"`
	Backbone   string `json:"backbone"`
	Encrypted  bool   `json:"encrypted"`
	KeyID      string `json:"key_id,omitempty"` // public id of the fleet key (hex)
	ShareCrops bool   `json:"share_crops"`
	// Running is false when read from the store of a stopped daemon
	// (ReadStatus).
	Running bool `json:"running"`
	// Members are the other devices seen (their last member record).
	Members []Member `json:"members"`
	// People are the fleet's people as this device knows them.
	People []PersonStatus `json:"people"`
	// Counts.
	PeopleLive     int `json:"people_live"`
	PeopleDeleted  int `json:"people_deleted"` // tombstones not yet expired
	PendingPublish int `json:"pending_publish"`
	// Times (zero: never, since the store was created).
	LastSync    time.Time `json:"last_sync,omitzero"`    // a change from another device applied
	LastPublish time.Time `json:"last_publish,omitzero"` // since start
	LastReceive time.Time `json:"last_receive,omitzero"` // since start
	// ConflictsResolved counts merges where both sides had changes;
	// Applied the changes from other devices; Refused the refused
	// payloads (since the store was created).
	ConflictsResolved uint64 `json:"conflicts_resolved"`
	Applied           uint64 `json:"applied"`
	Refused           uint64 `json:"refused"`
}

// PersonStatus is one person in Status.
type PersonStatus struct {
	ID      string `json:"id"`
	Name    string `json:"name"`              // the fleet's name
	Local   string `json:"local,omitempty"`   // the local name, when it differs (a name clash)
	Version string `json:"version"`           // the record's HLC
	Origin  string `json:"origin"`            // device of the latest change
	Deleted bool   `json:"deleted,omitempty"` // a tombstone
	Samples int    `json:"samples"`           // samples + negatives in the fleet
	Usable  int    `json:"usable"`            // of them, with this device's backbone
	Pending bool   `json:"pending,omitempty"` // waiting to be published
	// Skipped lists backbones whose samples cannot be used here.
	Skipped string `json:"skipped,omitempty"`
}

// Status reads the fleet's state: the records in the store, the members
// seen and the counters.
func (s *Sync) Status() (Status, error) {
	st, err := ReadStatus(s.st, s.opts.Backbone)
	st.Fleet, st.Device, st.Running = s.opts.Name, s.opts.Device, true
	st.Encrypted, st.ShareCrops = s.codec.encrypted(), s.opts.ShareCrops
	if st.Encrypted {
		st.KeyID = hex.EncodeToString(s.codec.keyID[:])
	}
	s.mu.Lock()
	st.Members = st.Members[:0]
	for _, m := range s.members {
		st.Members = append(st.Members, m)
	}
	st.LastSync, st.LastPublish, st.LastReceive = s.lastSync, s.lastPub, s.lastRecv
	st.ConflictsResolved, st.Applied, st.Refused = s.persist.Conflicts, s.persist.Applied, s.persist.Refused
	s.mu.Unlock()
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Device < st.Members[j].Device })
	return st, err
}

// ReadStatus reads the fleet state a store holds, without a running Sync
// (`edged fleet status` while the daemon is stopped; the store may be
// opened read-only). backbone is the local backbone, for the usable
// counts.
func ReadStatus(st *store.Store, backbone string) (Status, error) {
	out := Status{Backbone: backbone}
	err := st.View(func(tx *store.Tx) error {
		pending := map[string]bool{}
		if err := tx.FleetKeys(prefQueue, func(k string) error {
			pending[k[len(prefQueue):]] = true
			return nil
		}); err != nil {
			return err
		}
		out.PendingPublish = len(pending)
		var p persisted
		if _, err := getJSON(tx, keyStat, &p); err != nil {
			return err
		}
		out.ConflictsResolved, out.Applied, out.Refused, out.LastSync = p.Conflicts, p.Applied, p.Refused, p.LastSync
		if out.Backbone == "" {
			out.Backbone = p.Backbone
		}
		if err := tx.FleetScan(prefMember, func(_ string, v []byte) error {
			var m Member
			if unmarshalMember(v, &m) == nil {
				out.Members = append(out.Members, m)
				out.Fleet = m.Fleet
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.FleetScan(prefRecord, func(k string, v []byte) error {
			r, err := unmarshalRecord(v)
			if err != nil {
				return nil
			}
			out.Fleet = r.Fleet
			ps := PersonStatus{ID: r.ID, Name: r.Name.Value, Version: r.HLC.String(), Origin: r.Origin,
				Deleted: !r.Alive(), Samples: len(r.Samples) + len(r.Negatives), Pending: pending[r.ID]}
			for _, list := range [][]Sample{r.Samples, r.Negatives} {
				for _, x := range list {
					if _, ok := x.Vec(out.Backbone); ok {
						ps.Usable++
					}
				}
			}
			if p, err := tx.Person(r.ID); err == nil && p.Name != r.Name.Value {
				ps.Local = p.Name
			} else if err != nil && !errors.Is(err, store.ErrPersonNotFound) {
				return err
			}
			if b, _ := tx.FleetGet(prefSkip + r.ID); b != nil {
				ps.Skipped = string(b)
			}
			if ps.Deleted {
				out.PeopleDeleted++
			} else {
				out.PeopleLive++
			}
			out.People = append(out.People, ps)
			return nil
		})
	})
	sort.Slice(out.People, func(i, j int) bool {
		if out.People[i].Name != out.People[j].Name {
			return out.People[i].Name < out.People[j].Name
		}
		return out.People[i].ID < out.People[j].ID
	})
	if out.Members == nil {
		out.Members = []Member{}
	}
	if out.People == nil {
		out.People = []PersonStatus{}
	}
	return out, err
}

// WriteText writes the status for people (`edged fleet status`).
func (st Status) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	state := "running"
	if !st.Running {
		state = "stopped (read from the store)"
	}
	sealed := "no (plaintext records)"
	if st.Encrypted {
		sealed = "yes, key id " + st.KeyID
	}
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return fmt.Sprintf("%s (%s ago)", t.Local().Format("2006-01-02 15:04:05"), time.Since(t).Round(time.Second))
	}
	fmt.Fprintf(tw, "fleet\t%s\n", st.Fleet)
	fmt.Fprintf(tw, "device\t%s (%s), %s\n", st.Device, st.Backbone, state)
	fmt.Fprintf(tw, "sealed\t%s\n", sealed)
	fmt.Fprintf(tw, "share crops\t%v\n", st.ShareCrops)
	fmt.Fprintf(tw, "people\t%d (and %d deleted, remembered until their tombstones expire)\n", st.PeopleLive, st.PeopleDeleted)
	fmt.Fprintf(tw, "waiting to publish\t%d\n", st.PendingPublish)
	fmt.Fprintf(tw, "last sync\t%s\n", ago(st.LastSync))
	if st.Running {
		fmt.Fprintf(tw, "last publish\t%s\n", ago(st.LastPublish))
		fmt.Fprintf(tw, "last receive\t%s\n", ago(st.LastReceive))
	}
	fmt.Fprintf(tw, "changes applied\t%d\n", st.Applied)
	fmt.Fprintf(tw, "conflicts resolved\t%d\n", st.ConflictsResolved)
	fmt.Fprintf(tw, "records refused\t%d\n", st.Refused)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nmembers (%d other devices seen)\n", len(st.Members))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  DEVICE\tBACKBONE\tVERSION\tPEOPLE\tONLINE\tLAST SEEN")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%v\t%s\n", m.Device, m.Backbone, m.Version, m.People, m.Online, ago(m.Seen))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\npeople (%d)\n", len(st.People))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tNAME\tVERSION\tORIGIN\tSAMPLES\tUSABLE\tNOTE")
	for _, p := range st.People {
		var notes []string
		if p.Deleted {
			notes = append(notes, "deleted")
		}
		if p.Local != "" {
			notes = append(notes, "here: "+p.Local)
		}
		if p.Pending {
			notes = append(notes, "not yet published")
		}
		if p.Skipped != "" {
			notes = append(notes, "cannot use "+p.Skipped+" samples")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%s\n", p.ID, p.Name, p.Version, p.Origin, p.Samples, p.Usable, strings.Join(notes, "; "))
	}
	return tw.Flush()
}
