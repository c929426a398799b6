package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// failingOutput fails every write until healed (a full disk, a store
// refusing writes) and counts its calls.
type failingOutput struct {
	calls  atomic.Int64
	healed atomic.Bool
}

func (o *failingOutput) Name() string { return "outbox" }
func (o *failingOutput) WriteEvents([]Event) error {
	o.calls.Add(1)
	if o.healed.Load() {
		return nil
	}
	return errors.New("storage full")
}
func (o *failingOutput) Close() error { return nil }

// hangingOutput never returns from WriteEvents until released.
type hangingOutput struct{ release chan struct{} }

func (o *hangingOutput) Name() string              { return "stuckout" }
func (o *hangingOutput) WriteEvents([]Event) error { <-o.release; return nil }
func (o *hangingOutput) Close() error              { return nil }

// emitter publishes n events per frame (so the event queue fills when the
// output does not take them).
type emitter struct{ n int }

func (e emitter) Name() string { return "emit" }
func (e emitter) Process(f *Frame, acc Accumulator) error {
	for i := 0; i < e.n; i++ {
		acc.AddEvent(Event{Payload: recognized{Track: f.Seq}})
	}
	return nil
}

// hanger blocks in Process (not in AddEvent) until released.
type hanger struct {
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func (h *hanger) Name() string { return "hang" }
func (h *hanger) Process(*Frame, Accumulator) error {
	h.once.Do(func() { close(h.entered) })
	<-h.release
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRetryingOutputIsNotStuck: an event output retrying for ten minutes
// (a full disk) used to make Healthy report "event output stuck" after 60
// s: the watchdog stopped and systemd killed the daemon. Now the writer
// is "retrying" (degraded), the stage blocked on the full event queue is
// waiting, not working, and nothing is stuck; once the output heals,
// everything flows.
func TestRetryingOutputIsNotStuck(t *testing.T) {
	clock := newFakeClock()
	out := &failingOutput{}
	var im images
	p := New(Options{Clock: clock.Now, StuckAfter: time.Minute, EventQueue: 4, Logger: quietLogger()}, out)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := p.AddCamera(ctx, Camera{Name: "door", Source: &liveSource{period: time.Millisecond, im: &im},
		Processors: []Processor{emitter{n: 3}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the output to fail and the queue to fill", func() bool {
		h := p.Health()
		return out.calls.Load() > 1 && len(h.Stages) > 0 && !h.Stages[0].Blocked.IsZero()
	})
	clock.Advance(10 * time.Minute)
	if err := p.Healthy(); err != nil {
		t.Fatalf("a retrying output reported as a hang: %v", err)
	}
	if r := p.Retrying(); !strings.Contains(r, "outbox failing for 10m") || !strings.Contains(r, "storage full") {
		t.Fatalf("Retrying = %q", r)
	}
	out.healed.Store(true)
	waitFor(t, "the retry to succeed", func() bool { return p.Retrying() == "" })
	if err := p.Healthy(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHungStageIsStuck: a stage that hangs in its own work is still
// reported, after StuckAfter of the fake clock.
func TestHungStageIsStuck(t *testing.T) {
	clock := newFakeClock()
	h := &hanger{entered: make(chan struct{}), release: make(chan struct{})}
	var im images
	p := New(Options{Clock: clock.Now, StuckAfter: time.Minute, Logger: quietLogger()}, &eventSink{})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := p.AddCamera(ctx, Camera{Name: "door", Source: &liveSource{period: time.Millisecond, im: &im}, Processors: []Processor{h}}); err != nil {
		t.Fatal(err)
	}
	<-h.entered
	clock.Advance(59 * time.Second)
	if err := p.Healthy(); err != nil {
		t.Fatalf("stuck before StuckAfter: %v", err)
	}
	clock.Advance(2 * time.Second)
	if err := p.Healthy(); err == nil || !strings.Contains(err.Error(), "camera door: stage hang stuck for 1m1s") {
		t.Fatalf("Healthy = %v, want the hung stage", err)
	}
	close(h.release)
	cancel()
	_ = p.Close()
}

// TestHungOutputIsStuck: an output call that never returns is a hang.
func TestHungOutputIsStuck(t *testing.T) {
	clock := newFakeClock()
	out := &hangingOutput{release: make(chan struct{})}
	p := New(Options{Clock: clock.Now, StuckAfter: time.Minute, Logger: quietLogger()}, out)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	p.AddEvent(Event{Payload: recognized{Track: 1}})
	waitFor(t, "the output call", func() bool { return !p.Health().Output.CallSince.IsZero() })
	clock.Advance(2 * time.Minute)
	if err := p.Healthy(); err == nil || !strings.Contains(err.Error(), "event output stuckout hangs") {
		t.Fatalf("Healthy = %v", err)
	}
	close(out.release)
	_ = p.Close()
}

// TestHealthCheck covers the pure decision.
func TestHealthCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := Health{Now: t0.Add(5 * time.Minute), StuckAfter: time.Minute,
		Output: OutputHealth{Name: "outbox", FailingSince: t0, Attempts: 40, LastErr: errors.New("full")},
		Stages: []StageHealth{{Camera: "a", Stage: "recognize", Busy: t0.Add(-time.Second), Blocked: t0}}}
	if r := h.Check(); r.Stuck != nil || r.Retrying == "" {
		t.Fatalf("%+v", r)
	}
	h.Stages[0].Blocked = time.Time{} // the same stage, working: stuck
	if r := h.Check(); r.Stuck == nil {
		t.Fatalf("%+v", r)
	}
}
