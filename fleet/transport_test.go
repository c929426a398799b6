package fleet

import (
	"testing"

	"github.com/edged-dev/edged/mqtt"
)

// The daemon's MQTT client is a Transport (and tells the fleet about
// reconnections).
var (
	_ Transport       = (*mqtt.Client)(nil)
	_ ConnectNotifier = (*mqtt.Client)(nil)
)

func TestCommand(t *testing.T) {
	b := newMemBroker()
	d := newDevice(t, "a", Options{})
	d.start(b.client())
	d.enroll("Zoe", 1, 1)
	r := mqtt.NewRouter(mqtt.Limits{}, nil)
	r.Handle("fleet", mqtt.Command(d.s.Command))
	waitFor(t, deadline, "published", func() bool { st, _ := d.s.Status(); return len(st.People) == 1 && st.PendingPublish == 0 })
	reply := r.Run(t.Context(), r.Decode("fleet", []byte(`{"id":"r1","action":"resync"}`)))
	if !reply.OK {
		t.Fatalf("reply: %+v", reply.Error)
	}
	st := reply.Result.(Status)
	if st.Fleet != "home" || st.Device != "a" || len(st.People) != 1 || st.People[0].Name != "Zoe" {
		t.Fatalf("status: %+v", st)
	}
	if reply := r.Run(t.Context(), r.Decode("fleet", []byte(`{"id":"r2","action":"nuke"}`))); reply.OK || reply.Error.Code != mqtt.CodeInvalidField {
		t.Fatalf("bad action: %+v", reply)
	}
	off := mqtt.NewRouter(mqtt.Limits{}, nil)
	off.Handle("fleet", mqtt.Command(CommandOff))
	if reply := off.Run(t.Context(), off.Decode("fleet", []byte(`{"id":"r3"}`))); reply.OK || reply.Error.Code != mqtt.CodeUnavailable {
		t.Fatalf("off: %+v", reply)
	}
}
