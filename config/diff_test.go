package config

import "testing"

func TestRestartKeys(t *testing.T) {
	old, cur := Default(), Default()
	cur.MQTT.Broker, cur.Recognition.Decide = "tcp://x:1", 5
	if keys := RestartKeys(old, cur); len(keys) != 1 || keys[0] != "mqtt" {
		t.Errorf("restart keys %v", keys)
	}
	cur = Default()
	cur.Model.Backbone = "dlib"
	if keys := RestartKeys(old, cur); len(keys) != 1 || keys[0] != "model.backbone" {
		t.Errorf("backbone change: restart keys %v", keys)
	}
}
