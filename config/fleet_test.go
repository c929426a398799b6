package config

import (
	"errors"
	"testing"
	"time"
)

func TestFleetKeys(t *testing.T) {
	cfg := Default()
	cfg.Cameras = []Camera{{Name: "c", URL: "/dev/video0"}}
	cfg.Finish()
	if cfg.FleetEnabled() || cfg.Validate() != nil {
		t.Fatalf("default: enabled=%v err=%v", cfg.FleetEnabled(), cfg.Validate())
	}
	good := cfg
	good.Fleet.Name = "home.v2"
	good.MQTT.Broker = "tcp://broker:1883"
	if err := good.Validate(); err != nil || !good.FleetEnabled() {
		t.Fatalf("valid fleet: %v", err)
	}
	bad := cfg
	bad.Device = "fleet"
	bad.Fleet = Fleet{Name: "a/b", KeyFile: "/nonexistent/fleet.key", TombstoneTTL: time.Minute, MaxSamples: 0, MaxRecordBytes: 10}
	var ve *ValidationError
	if err := bad.Validate(); !errors.As(err, &ve) {
		t.Fatalf("want problems, got %v", err)
	}
	got := map[string]int{}
	for _, p := range ve.Problems {
		got[p.Key]++
	}
	for _, k := range []string{"device", "fleet.key_file", "fleet.tombstone_ttl", "fleet.max_samples", "fleet.max_record_bytes"} {
		if got[k] == 0 {
			t.Errorf("no problem for %s", k)
		}
	}
	if got["fleet.name"] != 2 { // the name, and no shared broker
		t.Errorf("fleet.name problems: %d (%v)", got["fleet.name"], ve)
	}
}
