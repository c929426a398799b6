package fleet

import (
	"encoding/json"
	"time"

	"github.com/edged-dev/edged/internal/ulid"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/store"
)

// Kinds of Change.
const (
	ChangeCreated = "created" // a person from another device is new here
	ChangeUpdated = "updated" // samples, negatives or clusters changed
	ChangeRenamed = "renamed" // the name changed (maybe with samples)
	ChangeDeleted = "deleted" // the person was deleted on another device
)

// Change is what another device's record did to a local person, after it
// was committed to the store.
type Change struct {
	PersonID string `json:"person_id"`
	// Name is the person's local name after the change (before it, for a
	// delete). It differs from the fleet's name only when two people of
	// the fleet share a name (docs/fleet.md, name clashes).
	Name    string `json:"name"`
	OldName string `json:"old_name,omitempty"` // before a rename
	Kind    string `json:"change"`             // ChangeCreated, ...
	// Origin is the device that made the latest change of the record, and
	// Version the record's HLC.
	Origin  string `json:"origin"`
	Version string `json:"version"`
	// SamplesAdded and SamplesRemoved count this device's samples
	// (negatives included) added and removed; SamplesSkipped the samples
	// of the person this device cannot use (another backbone, no shared
	// crop).
	SamplesAdded   int `json:"samples_added"`
	SamplesRemoved int `json:"samples_removed"`
	SamplesSkipped int `json:"samples_skipped,omitempty"`
	// Samples is the person's usable sample count after the change.
	Samples int `json:"samples"`
}

// TopicSyncEvent is the relative event topic of SyncEvent.
const TopicSyncEvent = "events/fleet_sync"

// SyncEventPayload is the payload of a fleet_sync event: the Change, with
// the event type, the event's identity (as every event on events/...,
// docs/mqtt.md), the fleet and the time.
type SyncEventPayload struct {
	Type    string `json:"type"`     // always "fleet_sync"
	EventID string `json:"event_id"` // unique id of the event (ULID): the same on a redelivery
	BootID  string `json:"boot_id"`  // id of the edged run that produced it (mqtt.BootID)
	Fleet   string `json:"fleet"`
	Change
	Time time.Time `json:"time"`
}

// SyncEvent returns the standard fleet_sync outbox event of a change (use
// it as Options.Events: func(c Change) []store.OutboxEvent { return
// []store.OutboxEvent{fleet.SyncEvent(name, c)} }). Its event_id is made
// here, once: the outbox stores the payload, so a redelivery repeats it.
func SyncEvent(fleetName string, c Change) store.OutboxEvent {
	now := time.Now().UTC()
	b, _ := json.Marshal(SyncEventPayload{Type: "fleet_sync", EventID: ulid.New(), BootID: mqtt.BootID(),
		Fleet: fleetName, Change: c, Time: now.Truncate(time.Millisecond)})
	return store.OutboxEvent{Topic: TopicSyncEvent, Payload: b, Time: now}
}
