package faultinject

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/service"
	"github.com/edged-dev/edged/store"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestBrokerDownTenMinutesOutboxFull: the broker is down for "10 minutes"
// of events (6000 events, 10 a second, produced as fast as possible) and
// the outbox limit (1 MiB) is reached. The oldest events are dropped, the
// exact count is reported (OutboxStats and one log line per outage), and
// when the broker is back the subscriber receives exactly the others, in
// order: received + dropped = produced.
func TestBrokerDownTenMinutesOutboxFull(t *testing.T) {
	var logs logBuf
	log := slog.New(slog.NewTextHandler(&logs, nil))
	st, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "db"), NoSync: true, OutboxMaxBytes: 1 << 20, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the broker is down: nothing listens there
	c, err := mqtt.New(mqtt.Options{Broker: "tcp://" + addr, Device: "pi", BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		HomeAssistant: mqtt.HomeAssistantOptions{Disabled: true}, Logger: log}, service.NewStoreOutbox(st), mqtt.NewRouter(mqtt.Limits{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const produced = 6000
	t0 := time.Now()
	for i := 0; i < produced; i++ {
		ev, err := service.OutboxEvent("door", mqtt.Camera{Camera: "door", State: mqtt.CameraUp, Reason: fmt.Sprintf("%06d", i)}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AppendEvents(ev); err != nil {
			t.Fatal(err)
		}
	}
	produce := time.Since(t0)
	stats := st.OutboxStats()
	dropped := stats.Dropped[store.DropSize]
	if dropped == 0 || stats.Bytes > 1<<20 || uint64(stats.Len)+dropped != produced {
		t.Fatalf("outbox %+v after %d events", stats, produced)
	}
	if n := strings.Count(logs.String(), "outbox limit reached"); n != 1 {
		t.Fatalf("%d 'limit reached' lines, want 1", n)
	}

	// The broker comes back; a subscriber counts what arrives.
	b, err := mqtt.StartBrokerWith(mqtt.BrokerOptions{Addr: addr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// edged's client needs the broker's credentials: restart it with them.
	c.Close()
	user, pass := b.Credentials()
	var mu sync.Mutex
	var got []string
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("sub").SetOrderMatters(true))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(0)
	if tok := sub.Subscribe("edged/pi/events/camera", 1, func(_ paho.Client, m paho.Message) {
		p, err := mqtt.DecodeEvent(mqtt.TopicCamera, m.Payload())
		if err == nil {
			mu.Lock()
			got = append(got, p.(mqtt.Camera).Reason)
			mu.Unlock()
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c2, err := mqtt.New(mqtt.Options{Broker: b.URL(), Username: user, Password: pass, Device: "pi",
		HomeAssistant: mqtt.HomeAssistantOptions{Disabled: true}, Logger: log}, service.NewStoreOutbox(st), mqtt.NewRouter(mqtt.Limits{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Start(); err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= stats.Len || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if uint64(len(got))+dropped != produced {
		t.Fatalf("received %d + dropped %d != produced %d", len(got), dropped, produced)
	}
	want := int(dropped) // the oldest were dropped: the first received is the next one
	for i, r := range got {
		if r != fmt.Sprintf("%06d", want+i) {
			t.Fatalf("event %d: %s, want %06d (gaps or reordering)", i, r, want+i)
		}
	}
	if !strings.Contains(logs.String(), fmt.Sprintf("outbox drained: events were dropped during the outage\" dropped=%d", dropped)) {
		t.Fatalf("no outage report with the exact count %d:\n%s", dropped, lastLines(logs.String(), 5))
	}
	t.Logf("broker down for %d events (%v to produce): %d kept within 1 MiB and delivered in order, %d oldest dropped and reported", produced, produce.Round(time.Millisecond), len(got), dropped)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// corruptChildEnv makes the test binary open (and read all of) a store
// that the parent corrupted.
const corruptChildEnv = "EDGED_FAULT_CORRUPT_DIR"

// TestCorruptChild opens the store named by the environment read-write and
// read-only and reads everything; it reports what happened. A crash
// (panic, SIGBUS) shows as its exit status in the parent.
func TestCorruptChild(t *testing.T) {
	dir := os.Getenv(corruptChildEnv)
	if dir == "" {
		t.Skip("child process of TestCorruptLogs")
	}
	for _, ro := range []bool{true, false} {
		st, err := store.Open(store.Options{Dir: dir, ReadOnly: ro, NoSync: true})
		if err != nil {
			fmt.Printf("open read-only=%v: error: %v\n", ro, err)
			continue
		}
		ps, perr := st.People()
		n := 0
		for _, p := range ps {
			ss, _ := st.Samples(p.ID)
			n += len(ss)
		}
		evs, eerr := st.PendingEvents(0, 0)
		fmt.Printf("open read-only=%v: ok: %d people, %d samples (%v), %d events (%v)\n", ro, len(ps), n, perr, len(evs), eerr)
		st.Close()
	}
}

// TestCorruptLogs damages the value log (bytes overwritten in the middle,
// and a truncated tail) and a table of a store and opens it in
// a child process: the open reports a clear error or repairs; it never
// crashes.
func TestCorruptLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: spawns child processes")
	}
	for _, tc := range []struct{ name, pattern string }{
		{"value log overwritten", "*.vlog"},
		{"table overwritten", "*.sst"},
		{"value log truncated", "*.vlog"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			// Values of 2 MiB go to the value log (above Badger's 1 MiB
			// threshold); small ones stay in the write-ahead log.
			st, err := store.Open(store.Options{Dir: dir, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 5; i++ {
				p := store.Person{Name: fmt.Sprintf("p%d", i)}
				if err := st.Update(func(tx *store.Tx) error { return tx.PutPerson(&p) }); err != nil {
					t.Fatal(err)
				}
				if err := st.AppendEvents(store.OutboxEvent{Topic: "events/x", Payload: bytes.Repeat([]byte{byte(i)}, 2<<20)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, tc.pattern))
			if len(files) == 0 {
				t.Skipf("no %s file", tc.pattern)
			}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil || len(b) < 64 {
					continue
				}
				if strings.Contains(tc.name, "truncated") {
					_ = os.Truncate(f, int64(len(b)/3))
					continue
				}
				mid := len(b) / 4
				for i := mid; i < mid+4096 && i < len(b); i++ {
					b[i] ^= 0x5a
				}
				_ = os.WriteFile(f, b, 0o600)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestCorruptChild$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), corruptChildEnv+"="+dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("opening a store with a damaged log crashed (%v):\n%s", err, out)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, "open ") {
					t.Log(l)
				}
			}
		})
	}
}
