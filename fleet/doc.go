// Package fleet lets several edged devices share their people through the
// MQTT broker they already use: enroll once, recognise on every device.
// Devices with the same fleet name on one broker (or on bridged brokers)
// keep each person as a retained, versioned record on
// <prefix>/fleet/<name>/people/<person_id>; a device that was off, or a new
// one, catches up from the broker alone.
//
// A record is a state-based CRDT: every field that can change carries a
// hybrid logical clock (HLC: physical milliseconds, a counter, the device
// id), and Merge is commutative, associative and idempotent. Name and
// deletion are last-writer-wins, samples an add-wins set by sample id,
// and tombstones (which expire after Options.TombstoneTTL) win over older
// adds. A device never mixes backbones: only vectors of its own backbone
// reach its store; a record of another backbone is re-embedded from shared
// crops (Options.ShareCrops, Options.Reembed) or reported once by name.
// Records may be sealed with a fleet key (AES-256-GCM, the topic as
// additional data); corrupt, forged and oversize records are refused,
// counted and logged, and never applied.
//
// The device's store stays the source of its own truth: a local change is
// folded into the person's record and queued for publishing in the store,
// in one transaction (package store's fleet key space), so a broker outage
// or a restart loses nothing. docs/fleet.md describes the topics, the
// record format, the merge rules with examples, bridging and partitions.
//
// # Usage
//
//	s, err := fleet.New(fleet.Options{
//		Name: "home", Device: "front-door", Backbone: "mobilefacenet",
//		Store: st, Transport: client, // mqtt.Client or a PahoTransport
//		Key: key,                     // fleet.LoadKey(path), or nil
//		OnChange: func(cs []fleet.Change) { enroller.Refresh(ids(cs)...) },
//		Events: func(c fleet.Change) []store.OutboxEvent {
//			return []store.OutboxEvent{fleet.SyncEvent("home", c)}
//		},
//	})
//	go s.Run(ctx)               // until ctx ends
//	s.Changed(personID)         // after a local enroll, rename, delete, feedback
//	st, err := s.Status()       // `edged fleet status`, the MQTT fleet command
package fleet
