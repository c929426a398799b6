package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/internal/mosquittotest"
	"github.com/edged-dev/edged/mqtt"
)

// startTestMosquitto runs a private Mosquitto on a free loopback port for
// the test's duration (skips when it is not installed) and returns its URL.
func startTestMosquitto(t *testing.T) string { return mosquittotest.Run(t, "").URL() }

// testFleet is daemons of one fleet ("home") on one private Mosquitto,
// each with its own data directory (kept across a restart) and a shared
// log that a failure prints.
type testFleet struct {
	t      *testing.T
	e      testEnv
	broker string
	root   string
	logs   lockedBuffer
}

func newTestFleet(t *testing.T) *testFleet {
	t.Helper()
	e := newTestEnv(t)
	return &testFleet{t: t, e: e, broker: startTestMosquitto(t), root: t.TempDir()}
}

// open makes device dev of the fleet, with the cameras given, without
// starting it: its MQTT client and fleet sync run, its cameras do not.
func (f *testFleet) open(dev string, cams ...config.Camera) *Agent {
	f.t.Helper()
	cfg := config.Default()
	cfg.Device, cfg.ModelDir, cfg.MQTT.Broker, cfg.HTTP.Addr, cfg.Fleet.Name = dev, f.e.models, f.broker, "off", "home"
	no := false
	cfg.MQTT.Discovery, cfg.Finetune.Enabled = &no, &no
	cfg.Cameras = cams
	cfg.Finish()
	a, err := New(Options{Config: cfg, DataDir: filepath.Join(f.root, dev), ModelDir: f.e.models,
		Logger: slog.New(slog.NewTextHandler(&f.logs, nil)).With("dev", dev), Version: "test"})
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

// start opens device dev and starts it.
func (f *testFleet) start(dev string) *Agent {
	f.t.Helper()
	a := f.open(dev)
	if err := a.Start(); err != nil {
		f.t.Fatal(err)
	}
	return a
}

// people is a device's store: person id → name.
func (f *testFleet) people(a *Agent) map[string]string {
	f.t.Helper()
	ps, err := a.c.st.People()
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range ps {
		out[p.ID] = p.Name
	}
	return out
}

// within fails the test when ok is not true within 15 s.
func (f *testFleet) within(what string, ok func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within 15 s\n%s", what, f.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFleetThreeDaemons: three daemons in one fleet on one Mosquitto.
// An enrollment on A is listed by B and C under the same person id; C,
// stopped while B renames the person and enrolls a second one, catches up
// when it starts again; a delete on A leaves B and C. Each within 15 s.
func TestFleetThreeDaemons(t *testing.T) {
	f := newTestFleet(t)
	e, people, within := f.e, f.people, f.within
	A, B, C := f.start("a"), f.start("b"), f.start("c")
	defer func() { _ = A.Close(); _ = B.Close() }()

	e.enrollFranck(t, A)
	var id string
	for pid := range people(A) {
		id = pid
	}
	within("B and C list Franck with A's person id", func() bool {
		return people(B)[id] == "Franck" && people(C)[id] == "Franck" && B.c.g.Info().People == 1
	})

	_ = C.Close()
	if _, err := B.c.Enroller().Rename(id, "Franck Dupont"); err != nil {
		t.Fatal(err)
	}
	e.enrollFranck(t, B) // a second person called Franck
	var second string
	for pid, name := range people(B) {
		if pid != id && name == "Franck" {
			second = pid
		}
	}
	if second == "" {
		t.Fatalf("B: no second person: %v", people(B))
	}
	C = f.start("c")
	defer func() { _ = C.Close() }()
	within("C catches up with the rename and the second enrollment", func() bool {
		p := people(C)
		return p[id] == "Franck Dupont" && p[second] != ""
	})

	if _, err := A.c.Enroller().Delete(id); err != nil {
		t.Fatal(err)
	}
	within("the delete reaches B and C", func() bool {
		_, inB := people(B)[id]
		_, inC := people(C)[id]
		return !inB && !inC
	})
}

// TestFleetRecognisesOnAnotherDevice: Franck is enrolled on A only; B, in
// the same fleet, has never enrolled anyone. Once A's record reached B
// (its fleet_sync event, its gallery), B runs on the sample video as its
// camera and publishes, over MQTT, a recognized event for Franck with A's
// person id, carrying event_id and boot_id like every event.
func TestFleetRecognisesOnAnotherDevice(t *testing.T) {
	f := newTestFleet(t)
	video := f.e.video(t)
	A := f.start("a")
	defer func() { _ = A.Close() }()
	f.e.enrollFranck(t, A)
	var id string
	for pid := range f.people(A) {
		id = pid
	}

	// A subscriber on B's topics from before B exists: it sees B's
	// fleet_sync and its events as any consumer would.
	sub := subscribe(t, f.broker, "edged/b/#")
	B := f.open("b", config.Camera{Name: "door", URL: video})
	defer func() { _ = B.Close() }()
	synced := sub.waitFor(t, "fleet_sync on B", func(m message) bool {
		return m.topic == "edged/b/events/fleet_sync" && m.field("person_id") == id
	})
	if synced.field("change") != "created" || synced.field("origin") != "a" || synced.field("name") != "Franck" {
		t.Errorf("B's fleet_sync: %s", synced.payload)
	}
	f.within("B's gallery holds Franck", func() bool {
		return f.people(B)[id] == "Franck" && B.c.g.Info().People == 1
	})

	if err := B.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := B.Wait(ctx); err != nil {
		t.Fatalf("B's file camera did not end: %v\n%s", err, f.logs.String())
	}
	rec := sub.waitFor(t, "recognized on B", func(m message) bool { return m.topic == "edged/b/events/recognized" })
	if rec.field("person_id") != id || rec.field("name") != "Franck" || rec.field("camera") != "door" {
		t.Errorf("B recognized %s; want Franck with A's person id %s", rec.payload, id)
	}
	if n := len(sub.all("edged/b/events/recognized")); n != 1 {
		t.Errorf("B: %d recognized events for one appearance", n)
	}
	sub.waitFor(t, "unknown on B (the stranger)", func(m message) bool { return m.topic == "edged/b/events/unknown" })
	if p := f.people(B); len(p) != 1 || len(sub.all("edged/b/events/enrolled")) != 0 {
		t.Errorf("B enrolled someone itself: people %v", p)
	}

	// Event identity (docs/mqtt.md): every event on events/... carries a
	// ULID event_id, its own, and the boot_id of the run.
	seen := map[string]string{}
	for _, m := range []message{rec, synced} {
		eid, _ := m.field("event_id").(string)
		if len(eid) != 26 || m.field("boot_id") != mqtt.BootID() {
			t.Errorf("%s: event_id %q, boot_id %v; want a ULID and %s", m.topic, eid, m.field("boot_id"), mqtt.BootID())
		}
		if other, dup := seen[eid]; dup {
			t.Errorf("%s and %s share event_id %s", m.topic, other, eid)
		}
		seen[eid] = m.topic
	}
}
