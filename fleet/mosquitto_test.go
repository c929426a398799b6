package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/store"
)

// The acceptance checks of the fleet, against a real Mosquitto: each
// device is a Sync over its own store, connected by its own paho client.
const within = 15 * time.Second

func (d *device) startOn(m *mosquitto) *PahoTransport {
	d.t.Helper()
	tr := dial(d.t, m, d.name)
	d.start(tr)
	return tr
}

func TestMosquittoThreeDevices(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	m := startMosquitto(t, "")
	opts := Options{Key: key, RetryMin: 50 * time.Millisecond, RetryMax: time.Second}
	a, b, c := newDevice(t, "front", opts), newDevice(t, "back", opts), newDevice(t, "garage", opts)
	a.startOn(m)
	b.startOn(m)
	tc := c.startOn(m)

	// 1. Enroll on A: B and C list the person with the same id.
	id := a.enroll("Alice", 1, 3)
	_, want, _ := a.person(id)
	for _, d := range []*device{b, c} {
		took := waitFor(t, within, d.name+" lists Alice", func() bool { return hasPerson(d, id, "Alice", sampleIDs(want)) })
		t.Logf("%s has Alice after %s", d.name, took.Round(time.Millisecond))
	}
	// B recognises her: its running gallery (refreshed by OnChange) and a
	// gallery loaded from its store both match A's samples (the replayed
	// video check is the daemon's).
	// The gallery is refreshed just after the store write: wait for it.
	waitFor(t, within, "B's running gallery recognises Alice", func() bool {
		for _, s := range want {
			if mt, err := b.g.Match(s.Embedding); err != nil || mt.PersonID != id || !mt.Known {
				return false
			}
		}
		return true
	})
	fresh := gallery.New(gallery.Options{Space: gallery.MobileFaceNetSpace})
	if rep, err := enroll.LoadGallery(b.st, fresh, "mobilefacenet"); err != nil || rep.People != 1 || rep.Samples != 3 {
		t.Fatalf("load gallery: %+v %v", rep, err)
	}
	for _, s := range want {
		if mt, err := fresh.Match(s.Embedding); err != nil || mt.PersonID != id || !mt.Known {
			t.Fatalf("B's loaded gallery does not recognise Alice's sample %s: %+v %v", s.ID, mt, err)
		}
	}

	// 2. C stopped; rename and a second enrollment on B; C starts again.
	c.stop()
	tc.Close()
	if _, err := b.en.Rename(id, "Alicia"); err != nil {
		t.Fatal(err)
	}
	b.s.Changed(id)
	id2 := b.enroll("Bruno", 2, 2)
	_, wantB, _ := b.person(id2)
	waitFor(t, within, "A has the rename and Bruno", func() bool {
		p, _, _ := a.person(id)
		return p.Name == "Alicia" && hasPerson(a, id2, "Bruno", sampleIDs(wantB))
	})
	c.open()
	start := time.Now()
	c.startOn(m)
	waitFor(t, within, "C caught up", func() bool {
		return hasPerson(c, id, "Alicia", sampleIDs(want)) && hasPerson(c, id2, "Bruno", sampleIDs(wantB))
	})
	t.Logf("C caught up %s after its start", time.Since(start).Round(time.Millisecond))

	// 3. Concurrent renames: A and B rename Bruno while both are cut off
	// from each other; both restart; one name wins everywhere.
	a.stop()
	b.stop()
	a.open()
	b.open()
	if _, err := a.st.RenamePerson(id2, "Bruno A"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.RenamePerson(id2, "Bruno B"); err != nil {
		t.Fatal(err)
	}
	a.startOn(m)
	b.startOn(m)
	name := func(d *device) string { p, _, _ := d.person(id2); return p.Name }
	waitFor(t, within, "one name for Bruno everywhere", func() bool {
		n := name(a)
		return (n == "Bruno A" || n == "Bruno B") && name(b) == n && name(c) == n
	})
	t.Logf("concurrent renames converged on %q", name(a))

	// 4. Delete on A: gone from B and C.
	if _, err := a.en.Delete(id); err != nil {
		t.Fatal(err)
	}
	a.s.Changed(id)
	for _, d := range []*device{b, c} {
		waitFor(t, within, d.name+" deleted Alicia", func() bool { return gone(d, id) })
	}

	// 5. A forged record (sealed with another key, published by a client
	// that has broker access) is refused by everyone, and the retained
	// copy is repaired by the devices.
	wrong, _ := newCodec(bytes.Repeat([]byte{0x66}, 32))
	topic := a.s.Topics().Person(id2)
	rec := &Record{V: 1, Fleet: "home", ID: id2, Name: Name{Value: "Pwned", HLC: HLC{Wall: time.Now().UnixMilli(), Device: "forger"}}}
	payload, _ := wrong.seal(topic, mustMarshal(t, rec))
	forger := dial(t, m, "forger")
	if err := forger.Publish(topic, payload, true); err != nil {
		t.Fatal(err)
	}
	fs := a.s
	for _, d := range []*device{a, b, c} {
		waitFor(t, within, d.name+" refused the forged record", func() bool { return d.s.m.refused.With("forged").Value() > 0 })
	}
	waitFor(t, within, "forged retained record replaced", func() bool {
		p := retained(t, m, fs.Topics().Person(id2))
		_, err := a.s.decodeRecord(fs.Topics().Person(id2), id2, p)
		return err == nil
	})
	for _, d := range []*device{a, b, c} {
		if name(d) == "Pwned" {
			t.Fatalf("%s applied a forged rename", d.name)
		}
	}
	st, err := c.s.Status()
	if err != nil || st.Refused == 0 || len(st.Members) < 2 || !st.Encrypted {
		t.Fatalf("status: %+v %v", st, err)
	}
}

func mustMarshal(t testing.TB, r *Record) []byte {
	b, err := marshalRecord(Normalize(r))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// retained reads the retained message of topic (nil when none).
func retained(t testing.TB, m *mosquitto, topic string) []byte {
	t.Helper()
	got := make(chan []byte, 1)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL()).SetClientID(fmt.Sprintf("peek-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("peek connect: %v", tok.Error())
	}
	defer c.Disconnect(50)
	c.Subscribe(topic, 1, func(_ paho.Client, msg paho.Message) {
		select {
		case got <- msg.Payload():
		default:
		}
	}).WaitTimeout(5 * time.Second)
	select {
	case p := <-got:
		return p
	case <-time.After(300 * time.Millisecond):
		return nil
	}
}

// TestMosquittoBridgedSites: two brokers joined by a Mosquitto bridge
// (the configuration docs/fleet.md shows); a change on site A reaches
// site B and back, and a device that joins site B later catches up from
// site B's broker alone.
func TestMosquittoBridgedSites(t *testing.T) {
	siteA := startMosquitto(t, "")
	siteB := startMosquitto(t, fmt.Sprintf(`
connection site-a
address 127.0.0.1:%d
topic edged/fleet/# both 1
try_private true
cleansession false
restart_timeout 1 5
`, siteA.Port()))
	opts := Options{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}
	a, b := newDevice(t, "site-a-door", opts), newDevice(t, "site-b-door", opts)
	a.startOn(siteA)
	b.startOn(siteB)
	waitFor(t, within, "the bridge is up", func() bool {
		b.s.mu.Lock()
		defer b.s.mu.Unlock()
		_, ok := b.s.members["site-a-door"]
		return ok
	})

	id := a.enroll("Chen", 3, 2)
	_, want, _ := a.person(id)
	took := waitFor(t, within, "site B has Chen", func() bool { return hasPerson(b, id, "Chen", sampleIDs(want)) })
	t.Logf("site A -> site B: %s", took.Round(time.Millisecond))

	if _, err := b.en.Rename(id, "Chen Li"); err != nil {
		t.Fatal(err)
	}
	b.s.Changed(id)
	waitFor(t, within, "site A has the rename", func() bool { p, _, _ := a.person(id); return p.Name == "Chen Li" })

	// A new device on site B catches up from site B's retained copies.
	late := newDevice(t, "site-b-garage", opts)
	late.startOn(siteB)
	waitFor(t, within, "the late device caught up", func() bool { return hasPerson(late, id, "Chen Li", sampleIDs(want)) })

	// Partition: site A's broker goes away; both sites change Chen; the
	// bridge comes back and everyone converges.
	siteA.Stop()
	if _, err := b.en.Rename(id, "Chen (B)"); err != nil {
		t.Fatal(err)
	}
	b.s.Changed(id)
	id2 := a.enroll("Dana", 4, 1) // site A, broker down: queued in A's store
	time.Sleep(200 * time.Millisecond)
	siteA.Start()
	waitFor(t, within, "both sites converge after the partition", func() bool {
		pa, _, _ := a.person(id)
		pb, _, _ := b.person(id)
		_, _, dana := late.person(id2)
		return pa.Name == "Chen (B)" && pb.Name == "Chen (B)" && dana
	})
}

// TestMosquittoBrokerOutage: a device keeps enrolling while its broker
// is down and restarts meanwhile; everything arrives once the broker is
// back.
func TestMosquittoBrokerOutage(t *testing.T) {
	m := startMosquitto(t, "")
	opts := Options{RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond}
	a, b := newDevice(t, "a", opts), newDevice(t, "b", opts)
	a.startOn(m)
	b.startOn(m)
	m.Stop()
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, a.enroll(fmt.Sprintf("P%d", i), uint64(100+i), 1))
	}
	a.stop()
	a.open()
	a.startOn2(m) // the broker is still down: connects later
	m.Start()
	waitFor(t, within, "B has all five", func() bool {
		for _, id := range ids {
			if gone(b, id) {
				return false
			}
		}
		return true
	})
}

// startOn2 starts without waiting for the connection.
func (d *device) startOn2(m *mosquitto) {
	tr, err := DialPaho(PahoOptions{Broker: m.URL(), ClientID: "edged-" + d.name + "-2", Timeout: 2 * time.Second})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(tr.Close)
	d.start(tr)
}

var _ = json.Marshal
var _ = slices.Equal[[]string]
var _ = store.NewID

// TestMosquittoFleetCommand: the daemon's MQTT client serves the fleet
// command (router.Handle("fleet", mqtt.Command(s.Command))) and
// AskStatus (edged fleet status) reads it.
func TestMosquittoFleetCommand(t *testing.T) {
	m := startMosquitto(t, "")
	// As in the daemon: the router exists before the client, the Sync
	// after it (it needs the client as its transport).
	var fs atomic.Pointer[Sync]
	router := mqtt.NewRouter(mqtt.Limits{}, nil)
	router.Handle("fleet", mqtt.Command(func(ctx context.Context, r CommandRequest) (Status, error) {
		if s := fs.Load(); s != nil {
			return s.Command(ctx, r)
		}
		return CommandOff(ctx, r)
	}))
	cl, err := mqtt.New(mqtt.Options{Broker: m.URL(), Device: "front", BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second},
		mqtt.NewMemOutbox(), router)
	if err != nil {
		t.Fatal(err)
	}
	d := newDevice(t, "front", Options{})
	d.start(cl) // the daemon's client is the transport
	fs.Store(d.s)
	if err := cl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	other := newDevice(t, "back", Options{})
	other.startOn(m)
	id := other.enroll("Nina", 20, 2)
	waitFor(t, within, "front has Nina", func() bool { return !gone(d, id) })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := AskStatus(ctx, PahoOptions{Broker: m.URL()}, "edged/front", ActionStatus)
	if err != nil {
		t.Fatal(err)
	}
	if st.Device != "front" || len(st.People) != 1 || st.People[0].ID != id || st.People[0].Origin != "back" || len(st.Members) != 1 {
		t.Fatalf("status: %+v", st)
	}
}
