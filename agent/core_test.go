package agent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/capture"
	"github.com/edged-dev/edged/mqtt"
)

func TestCameraPayloadNeverLeaksURLs(t *testing.T) {
	err := errors.New(`open "rtsp://admin:secret@10.0.0.5/stream1": connection refused`)
	ps, ok := cameraPayload("door", capture.Event{Kind: capture.EventDown, Err: err, Time: time.Unix(100, 0)})
	if !ok || len(ps) != 2 {
		t.Fatalf("%v %v", ps, ok)
	}
	ev := ps[0].(mqtt.Camera)
	if ev.State != mqtt.CameraDown || strings.Contains(ev.Reason, "secret") || !strings.Contains(ev.Reason, "<url>") {
		t.Errorf("event %+v", ev)
	}
	if st := ps[1].(mqtt.CameraState); st.Status != mqtt.CameraDown || st.Camera != "door" {
		t.Errorf("state %+v", st)
	}
	if ps, ok := cameraPayload("door", capture.Event{Kind: capture.EventUp}); !ok || ps[0].(mqtt.Camera).State != mqtt.CameraUp {
		t.Errorf("up: %v", ps)
	}
	if _, ok := cameraPayload("door", capture.Event{Kind: capture.EventError}); ok {
		t.Error("a failed reconnect attempt is not a camera event")
	}
	if got := redact("tcp://user:pw@broker:1883"); got != "tcp://***@broker:1883" {
		t.Errorf("redact: %s", got)
	}
}
