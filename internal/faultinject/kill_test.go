//go:build linux

package faultinject

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/service"
	"github.com/edged-dev/edged/store"
)

const (
	childDirEnv = "EDGED_FAULT_DIR"
	// killsEnv sets the number of kills (make soak: 100).
	killsEnv = "EDGED_SOAK_KILLS"
	// samplesPerEnroll is what every enroll sends: a new person with this
	// many samples.
	samplesPerEnroll = 3
)

// TestChild is the daemon-like child: the embedded broker, the MQTT client
// serving commands through the real service, enroller and store, and a
// loop committing outbox events and fine-tune heads, until it is killed.
// It does nothing in a normal run.
func TestChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("child process of TestKillDuringEnrollsEventsAndFinetunes")
	}
	out := &syncWriter{w: bufio.NewWriter(os.Stdout)}
	fail := func(err error) { out.line("error %v", err); os.Exit(1) }
	st, err := store.Open(store.Options{Dir: dir}) // fsync on every commit
	if err != nil {
		fail(err)
	}
	g := gallery.New(gallery.Options{})
	if _, err := enroll.LoadGallery(st, g, ""); err != nil {
		fail(err)
	}
	var svc *service.Service
	en := enroll.New(st, g, Finder{}, Embedder{}, enroll.Options{
		Events: func(r enroll.Result) []store.OutboxEvent { return svc.EnrollEvents(r) },
	})
	if svc, err = service.New(service.Options{Device: "pi", Store: st, Gallery: g, Enroller: en}); err != nil {
		fail(err)
	}
	b, err := mqtt.StartBrokerWith(mqtt.BrokerOptions{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fail(err)
	}
	user, pass := b.Credentials()
	// The store's outbox is not drained here (a MemOutbox feeds the
	// client), so the parent can check that every committed event is in it.
	c, err := mqtt.New(mqtt.Options{Broker: b.URL(), Username: user, Password: pass, Device: "pi",
		HomeAssistant: mqtt.HomeAssistantOptions{Disabled: true}, Dedup: service.NewCommandLog(st)},
		mqtt.NewMemOutbox(), mqtt.NewServiceRouter(svc, mqtt.Limits{}, nil))
	if err != nil {
		fail(err)
	}
	if err := c.Start(); err != nil {
		fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		fail(err)
	}
	out.line("broker %s", b.URL())
	// Event flow and fine-tunes, reported after their commit.
	for i := 0; ; i++ {
		payload := fmt.Sprintf("ev-%d-%d", os.Getpid(), i)
		if err := st.AppendEvents(store.OutboxEvent{Topic: "events/test", Payload: []byte(payload)}); err != nil {
			fail(err)
		}
		out.line("event %s", payload)
		if i%25 == 24 {
			h := store.HeadVersion{Weights: make([]byte, 4096), Note: "fault injection"}
			if err := st.SaveHead(h); err != nil {
				fail(err)
			}
			out.line("head")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (s *syncWriter) line(f string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, f+"\n", a...)
	s.w.Flush()
}

// reply is what the parent learns from an enroll reply.
type reply struct {
	OK     bool   `json:"ok"`
	ID     string `json:"id"`
	Result struct {
		PersonID     string `json:"person_id"`
		SamplesTotal int    `json:"samples_total"`
	} `json:"result"`
	raw string
}

// TestKillDuringEnrollsEventsAndFinetunes kills the child N times (10, or
// $EDGED_SOAK_KILLS) at random moments while a user sends MQTT enrolls and
// the child commits events and heads. After every kill: the store opens
// read-only (repairing the crash), every enroll answered ok is there with
// all its samples, no person is partial, every event the child reported
// committed is in the outbox; after the restart, the last answered enroll
// sent again gets the same reply and enrolls nobody.
func TestKillDuringEnrollsEventsAndFinetunes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: spawns and kills child processes")
	}
	kills := 10
	if v := os.Getenv(killsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("$%s=%q", killsEnv, v)
		}
		kills = n
	}
	dir := filepath.Join(t.TempDir(), "db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	answered := map[string]reply{} // request id -> ok reply
	events := map[string]bool{}
	var lastID string
	var repairs, heads int
	var repairTime time.Duration
	next := 0
	start := time.Now()
	for k := 0; k < kills; k++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		var url string
		for url == "" && sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 2 && f[0] == "broker":
				url = f[1]
			case len(f) > 0 && f[0] == "error":
				t.Fatalf("kill %d: child: %s", k, sc.Text())
			}
		}
		if url == "" {
			t.Fatalf("kill %d: the child did not start", k)
		}
		var mu sync.Mutex
		lines := make(chan struct{})
		go func() {
			defer close(lines)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				mu.Lock()
				switch {
				case len(f) == 2 && f[0] == "event":
					events[f[1]] = true
				case len(f) == 1 && f[0] == "head":
					heads++
				}
				mu.Unlock()
			}
		}()
		replies := make(chan reply, 64)
		user := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("user-%d", k)))
		if tok := user.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("kill %d: connect: %v", k, tok.Error())
		}
		if tok := user.Subscribe("edged/pi/reply/#", 1, func(_ paho.Client, m paho.Message) {
			var r reply
			_ = json.Unmarshal(m.Payload(), &r)
			r.raw = string(m.Payload())
			replies <- r
		}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		send := func(id string, person int) {
			imgs := make([]string, samplesPerEnroll)
			for i := range imgs {
				imgs[i] = base64.StdEncoding.EncodeToString(Photo(person, i))
			}
			b, _ := json.Marshal(map[string]any{"id": id, "name": "person-" + id, "images": imgs})
			user.Publish("edged/pi/cmd/enroll", 1, false, b)
		}
		// The last enroll answered before the previous kill, again: the
		// same reply, nobody enrolled.
		if lastID != "" {
			before := answered[lastID]
			send(lastID, 0)
			select {
			case r := <-replies:
				if r.raw != before.raw {
					t.Fatalf("kill %d: repeated %s after a restart got %s, first reply %s", k, lastID, r.raw, before.raw)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("kill %d: no reply to the repeated %s", k, lastID)
			}
		}
		// Enrolls, one at a time, until the kill at a random moment.
		deadline := time.Now().Add(time.Duration(150+rng.IntN(600)) * time.Millisecond)
		for time.Now().Before(deadline) {
			next++
			id := fmt.Sprintf("e%d", next)
			send(id, next)
			select {
			case r := <-replies:
				if r.OK && r.ID == id {
					answered[id], lastID = r, id
				}
			case <-time.After(time.Until(deadline)):
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		<-lines
		user.Disconnect(0)
	drain:
		for {
			select {
			case r := <-replies: // answered before the kill
				if r.OK && strings.HasPrefix(r.ID, "e") {
					answered[r.ID] = r
				}
			default:
				break drain
			}
		}

		t0 := time.Now()
		ro, err := store.Open(store.Options{Dir: dir, ReadOnly: true})
		if err != nil {
			t.Fatalf("kill %d: read-only open (edged people list) after kill -9: %v", k, err)
		}
		if ro.Repaired() != nil {
			repairs++
			repairTime += time.Since(t0)
		}
		check(t, k, ro, answered, events)
		ro.Close()
	}
	t.Logf("%d kills in %v: %d enrolls answered ok, all present with %d samples; %d events and %d heads committed, all present; %d read-only opens repaired a crash (mean %v)",
		kills, time.Since(start).Round(time.Second), len(answered), samplesPerEnroll, len(events), heads, repairs, (repairTime / time.Duration(max(repairs, 1))).Round(time.Millisecond))
}

func check(t *testing.T, k int, st *store.Store, answered map[string]reply, events map[string]bool) {
	t.Helper()
	people := map[string]int{}
	ps, err := st.People()
	if err != nil {
		t.Fatalf("kill %d: %v", k, err)
	}
	for _, p := range ps {
		ss, err := st.Samples(p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) != samplesPerEnroll {
			t.Errorf("kill %d: partial person %s %q: %d samples", k, p.ID, p.Name, len(ss))
		}
		people[p.ID] = len(ss)
	}
	for id, r := range answered {
		if people[r.Result.PersonID] != samplesPerEnroll || r.Result.SamplesTotal != samplesPerEnroll {
			t.Errorf("kill %d: enroll %s answered ok (%s) is not there with its samples", k, id, r.raw)
		}
	}
	evs, err := st.PendingEvents(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]bool{}
	for _, e := range evs {
		in[string(e.Payload)] = true
	}
	for p := range events {
		if !in[p] {
			t.Errorf("kill %d: committed event %s is not in the outbox", k, p)
		}
	}
	hs, err := st.Heads()
	if err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, h := range hs {
		if h.Active {
			active++
		}
	}
	if active > 1 {
		t.Errorf("kill %d: %d active heads", k, active)
	}
}
