package mqtt

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestRawPublishSubscribe: Subscribe before Start and after the
// connection, retained messages, resubscription after a broker restart,
// ErrNotConnected while it is down, OnConnect hooks.
func TestRawPublishSubscribe(t *testing.T) {
	m := startMosquitto(t, "")
	c, err := New(Options{Broker: m.URL(), Device: "dev1", BackoffMin: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		ConnectTimeout: 2 * time.Second, PublishTimeout: 3 * time.Second, Logger: testLogger(t)}, NewMemOutbox(), NewRouter(Limits{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string][]string{}
	connects := 0
	rec := func(name string) func(string, []byte) {
		return func(topic string, payload []byte) {
			mu.Lock()
			got[name] = append(got[name], topic+"="+string(payload))
			mu.Unlock()
		}
	}
	count := func(name string) int { mu.Lock(); defer mu.Unlock(); return len(got[name]) }
	if err := c.Subscribe("edged/fleet/home/people/+", rec("early")); err != nil {
		t.Fatal(err)
	}
	c.OnConnect(func() { mu.Lock(); connects++; mu.Unlock() })
	if err := c.Publish("edged/fleet/home/people/x", []byte("1"), true); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("publish before start: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.WaitConnected(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("edged/fleet/home/people/p1", []byte("v1"), true); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe("edged/fleet/home/#", rec("late")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for count("early") < 1 || count("late") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("not received: %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Broker restart: the subscriptions are made again and the retained
	// message comes back; Publish fails while the broker is away.
	m.Stop()
	for c.Connected() {
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Publish("edged/fleet/home/people/p2", []byte("v2"), true); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("publish while down: %v", err)
	}
	before := count("early")
	m.Start()
	deadline = time.Now().Add(10 * time.Second)
	for count("early") <= before {
		if time.Now().After(deadline) {
			t.Fatalf("no resubscription: %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if connects < 2 {
		t.Fatalf("OnConnect ran %d times", connects)
	}
	if last := got["early"][len(got["early"])-1]; last != "edged/fleet/home/people/p1=v1" {
		t.Fatalf("after the restart: %q", last)
	}
	_ = c.Close()
	if err := c.Publish("x", nil, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}
