package pipeline

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/mqtt"
)

func TestJSONLinesIsThePayloadPlusTopic(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSONLines(&buf, "edged/pi")
	at := mqtt.At(MediaEpoch.Add(3250 * time.Millisecond))
	rec := mqtt.Identify(mqtt.Recognized{Camera: "door", Track: 4, PersonID: "p1", Name: "Franck", Distance: 0.31, Confidence: 0.97, Time: at, FirstSeen: at}).(mqtt.Recognized)
	evs := []Event{
		{Camera: "door", Payload: rec},
		{Camera: "door", Payload: mqtt.PersonState{PersonID: "p1", Name: "Franck"}}, // retained state: not written
		{Camera: "door", Payload: mqtt.Unknown{Camera: "door", Track: 5, Distance: 0.7, Time: at}},
	}
	if err := j.WriteEvents(evs); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || j.Lines() != 2 {
		t.Fatalf("lines:\n%s", buf.String())
	}
	if !strings.HasPrefix(lines[0], `{"topic":"edged/pi/events/recognized","type":"recognized",`) {
		t.Errorf("line 0: %s", lines[0])
	}
	// Without the topic, the line is exactly the MQTT payload.
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "topic")
	want, _ := json.Marshal(rec)
	var wm map[string]any
	_ = json.Unmarshal(want, &wm)
	gb, _ := json.Marshal(m)
	wb, _ := json.Marshal(wm)
	if !bytes.Equal(gb, wb) {
		t.Errorf("payload differs:\n got %s\nwant %s", gb, wb)
	}
	for _, k := range []string{"type", "event_id", "boot_id", "camera", "track", "person_id", "name", "distance", "confidence", "time"} {
		if _, ok := m[k]; !ok {
			t.Errorf("line lacks %q", k)
		}
	}
	if m["time"] != "1970-01-01T00:00:03.250Z" {
		t.Errorf("time %v, want the media time", m["time"])
	}
}

func TestLogOutput(t *testing.T) {
	var buf bytes.Buffer
	l := LogOutput{Log: slog.New(slog.NewTextHandler(&buf, nil))}
	_ = l.WriteEvents([]Event{{Camera: "door", Payload: mqtt.Recognized{Camera: "door", Track: 2, Name: "Franck", Confidence: 0.9}}})
	if s := buf.String(); !strings.Contains(s, "msg=recognized") || !strings.Contains(s, "name=Franck") || !strings.Contains(s, "camera=door") {
		t.Errorf("log: %s", s)
	}
}

// TestEventsCarryOneIdentity: events had no id, and subscribers were told
// to de-duplicate on (camera, track, type), which dropped real events once
// track ids restarted. Every event now gets an event_id when it enters the
// pipeline, the same in every output (MQTT outbox, replay lines), new for
// every event, and never repeated by a second run (a replay twice).
func TestEventsCarryOneIdentity(t *testing.T) {
	seen := map[string]bool{}
	for run := 0; run < 2; run++ {
		var buf bytes.Buffer
		var teed []Event
		p := New(Options{Logger: slog.New(slog.DiscardHandler)}, NewJSONLines(&buf, "edged/pi"), Tee(func(e Event) { teed = append(teed, e) }))
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50; i++ {
			p.AddEvent(Event{Camera: "door", Payload: mqtt.Camera{Camera: "door", State: mqtt.CameraUp}})
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 50 || len(teed) != 50 {
			t.Fatalf("%d lines, %d teed", len(lines), len(teed))
		}
		for i, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			id, _ := m["event_id"].(string)
			if len(id) != 26 || seen[id] || m["boot_id"] != mqtt.BootID() {
				t.Fatalf("run %d line %d: event_id %q (seen before: %v), boot_id %v", run, i, id, seen[id], m["boot_id"])
			}
			seen[id] = true
			if got := teed[i].Payload.(mqtt.Camera).EventID; got != id {
				t.Fatalf("the outputs disagree on the event id: %s, %s", id, got)
			}
		}
	}
}
