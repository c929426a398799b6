package fleet

import (
	"encoding/json"
	"testing"

	"github.com/edged-dev/edged/mqtt"
)

// TestSyncEventIdentity: a fleet_sync event carries event_id and boot_id
// like every event on events/... (docs/mqtt.md, event identity): a ULID of
// its own per event, and this run's boot id.
func TestSyncEventIdentity(t *testing.T) {
	c := Change{PersonID: "01J0B6Y4Q8W7ZK3M2N5P6R7S8T", Name: "Alicia", Kind: ChangeCreated, Origin: "front-door", Samples: 3}
	seen := map[string]bool{}
	for range 2 {
		ev := SyncEvent("home", c)
		if ev.Topic != TopicSyncEvent {
			t.Errorf("topic %q", ev.Topic)
		}
		var p map[string]any
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			t.Fatal(err)
		}
		id, _ := p["event_id"].(string)
		if len(id) != 26 || seen[id] {
			t.Errorf("event_id %q: want a new ULID (seen %v)", id, seen)
		}
		seen[id] = true
		if p["boot_id"] != mqtt.BootID() {
			t.Errorf("boot_id %v, want %s", p["boot_id"], mqtt.BootID())
		}
		if p["type"] != "fleet_sync" || p["fleet"] != "home" || p["person_id"] != c.PersonID || p["change"] != ChangeCreated {
			t.Errorf("payload %s", ev.Payload)
		}
	}
}
