package fleet

import (
	"github.com/edged-dev/edged/internal/metrics"
	"github.com/edged-dev/edged/store"
)

type fleetMetrics struct {
	received, receivedBytes, published, publishedBytes, publishErrors metrics.Counter
	conflicts, applyErrors, skipped, reembedded, reembedErrors        metrics.Counter
	inboxFull                                                         metrics.Counter
	refused, changes                                                  *metrics.CounterVec
}

// The edged_fleet_* series (docs/fleet.md, operations).
func newFleetMetrics(r *metrics.Registry, s *Sync) *fleetMetrics {
	c := func(name, help string) metrics.Counter { return r.Counter(name, help).With() }
	m := &fleetMetrics{
		received:       c("edged_fleet_records_received_total", "Payloads received on the fleet's topics (records, members, crops), this device's own included."),
		receivedBytes:  c("edged_fleet_received_bytes_total", "Payload bytes received on the fleet's topics."),
		published:      c("edged_fleet_records_published_total", "Payloads the broker acknowledged (records, members, crops, clears)."),
		publishedBytes: c("edged_fleet_published_bytes_total", "Payload bytes the broker acknowledged."),
		publishErrors:  c("edged_fleet_publish_errors_total", "Failed publishes (retried with backoff; the queue is in the store)."),
		conflicts:      c("edged_fleet_conflicts_resolved_total", "Merges where this device and the broker's copy each had changes the other lacked."),
		applyErrors:    c("edged_fleet_apply_errors_total", "People whose record could not be applied to the store (retried at the next reconciliation)."),
		skipped:        c("edged_fleet_backbone_mismatch_total", "People reported because their samples are of another backbone and cannot be used here."),
		reembedded:     c("edged_fleet_reembedded_total", "Samples re-embedded here from crops another device shared."),
		reembedErrors:  c("edged_fleet_reembed_errors_total", "Failed re-embeddings of shared crops."),
		inboxFull:      c("edged_fleet_inbox_full_total", "Payloads dropped because the inbox was full (they return with the next resubscription)."),
		refused:        r.Counter("edged_fleet_records_refused_total", "Payloads refused: corrupt, forged (wrong key, tampered, moved), oversize, invalid, clock_skew, version.", "reason"),
		changes:        r.Counter("edged_fleet_changes_applied_total", "Changes from other devices applied to local people, by kind.", "change"),
	}
	r.GaugeFunc("edged_fleet_members", "Other devices of the fleet seen, by whether their last member record said online.", []string{"online"},
		func(emit func(float64, ...string)) {
			s.mu.Lock()
			on, off := 0, 0
			for _, mb := range s.members {
				if mb.Online {
					on++
				} else {
					off++
				}
			}
			s.mu.Unlock()
			emit(float64(on), "true")
			emit(float64(off), "false")
		})
	r.GaugeFunc("edged_fleet_last_sync_timestamp_seconds", "When a change from another device was last applied (Unix seconds; 0: never).", nil,
		func(emit func(float64, ...string)) {
			s.mu.Lock()
			t := s.lastSync
			s.mu.Unlock()
			v := 0.0
			if !t.IsZero() {
				v = float64(t.UnixMilli()) / 1000
			}
			emit(v)
		})
	r.GaugeFunc("edged_fleet_publish_pending", "Records waiting to be published (kept in the store across restarts and outages).", nil,
		func(emit func(float64, ...string)) {
			n := 0
			_ = s.st.View(func(tx *store.Tx) error {
				return tx.FleetKeys(prefQueue, func(string) error { n++; return nil })
			})
			emit(float64(n))
		})
	return m
}
