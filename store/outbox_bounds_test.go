package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), sub)
}

// TestOutboxSizeBound: the outbox had no limit; now an append past
// OutboxMaxBytes drops the oldest events in the same commit, keeps the
// newest retained state of every topic, counts the drops exactly and logs
// the outage once when it begins and once when it is over.
func TestOutboxSizeBound(t *testing.T) {
	var logs logBuffer
	dir := filepath.Join(t.TempDir(), "db")
	const maxBytes = 64 << 10
	opts := Options{Dir: dir, NoSync: true, OutboxMaxBytes: maxBytes, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	st, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 400)
	const n = 1000
	for i := 0; i < n; i++ {
		evs := []OutboxEvent{{Topic: "events/recognized", Payload: append([]byte(fmt.Sprintf("%04d", i)), payload...)}}
		if i%10 == 0 { // retained states of two topics, superseding each other
			evs = append(evs, OutboxEvent{Topic: fmt.Sprintf("people/p%d/state", i%20/10), Payload: []byte(fmt.Sprint(i)), Retain: true})
		}
		if err := st.AppendEvents(evs...); err != nil {
			t.Fatal(err)
		}
		if s := st.OutboxStats(); s.Bytes > maxBytes {
			t.Fatalf("after %d appends the outbox holds %d bytes, max %d", i+1, s.Bytes, maxBytes)
		}
	}
	stats := st.OutboxStats()
	evs, err := st.PendingEvents(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != stats.Len {
		t.Fatalf("Len %d, %d pending", stats.Len, len(evs))
	}
	total := n + n/10
	if got := stats.Dropped[DropSize]; got != uint64(total-len(evs)) || stats.Dropped[DropAge] != 0 {
		t.Fatalf("dropped %v, want %d by size", stats.Dropped, total-len(evs))
	}
	// What is left: the newest events, in order, without gaps among the
	// non-retained ones, and the newest state of both topics.
	var last int = -1
	states := map[string]string{}
	for _, ev := range evs {
		if ev.Retain {
			states[ev.Topic] = string(ev.Payload)
			continue
		}
		var i int
		fmt.Sscanf(string(ev.Payload[:4]), "%d", &i)
		if last >= 0 && i != last+1 {
			t.Fatalf("gap: event %d after %d", i, last)
		}
		last = i
	}
	if last != n-1 {
		t.Fatalf("newest event %d, want %d", last, n-1)
	}
	if states["people/p0/state"] != "980" || states["people/p1/state"] != "990" {
		t.Fatalf("newest retained states: %v", states)
	}
	if c := logs.count("outbox limit reached"); c != 1 {
		t.Fatalf("%d 'limit reached' lines, want 1 per outage", c)
	}
	t.Logf("%d events kept (%d bytes), %d dropped", stats.Len, stats.Bytes, stats.Dropped[DropSize])

	// The accounting survives a restart.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = Open(opts); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if s := st.OutboxStats(); s.Len != stats.Len || s.Bytes != stats.Bytes {
		t.Fatalf("after reopen %+v, before %+v", s, stats)
	}
	// The broker is back: draining reports the outage once.
	for _, ev := range evs {
		if err := st.AckEvent(ev.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if s := st.OutboxStats(); s.Len != 0 || s.Bytes != 0 {
		t.Fatalf("drained: %+v", s)
	}
}

// TestOutboxOutageReport: the outage report comes once, when the outbox
// drains below half its limit, with the exact count.
func TestOutboxOutageReport(t *testing.T) {
	var logs logBuffer
	st, err := Open(Options{Dir: filepath.Join(t.TempDir(), "db"), NoSync: true, OutboxMaxBytes: 8 << 10,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < 100; i++ {
		if err := st.AppendEvents(OutboxEvent{Topic: "events/a", Payload: bytes.Repeat([]byte("y"), 200)}); err != nil {
			t.Fatal(err)
		}
	}
	dropped := st.OutboxStats().Dropped[DropSize]
	evs, _ := st.PendingEvents(0, 0)
	for _, ev := range evs {
		if err := st.AckEvent(ev.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if c := logs.count("outbox drained: events were dropped during the outage"); c != 1 {
		t.Fatalf("%d outage reports, want 1:\n%s", c, logs.b.String())
	}
	if !strings.Contains(logs.b.String(), fmt.Sprintf("dropped=%d ", dropped)) {
		t.Fatalf("report without the count %d:\n%s", dropped, logs.b.String())
	}
}

// TestOutboxAgeBound: PruneOutbox drops events older than OutboxMaxAge
// (not the newest retained state of a topic) and counts them.
func TestOutboxAgeBound(t *testing.T) {
	st, err := Open(Options{Dir: filepath.Join(t.TempDir(), "db"), NoSync: true, OutboxMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	old := now.Add(-2 * time.Hour)
	if err := st.AppendEvents(
		OutboxEvent{Topic: "events/a", Time: old},
		OutboxEvent{Topic: "cameras/door/state", Retain: true, Time: old, Payload: []byte("1")},
		OutboxEvent{Topic: "events/a", Time: old},
		OutboxEvent{Topic: "cameras/door/state", Retain: true, Time: old, Payload: []byte("2")},
		OutboxEvent{Topic: "events/a", Time: now},
	); err != nil {
		t.Fatal(err)
	}
	n, err := st.PruneOutbox(now)
	if err != nil || n != 3 {
		t.Fatalf("PruneOutbox = %d, %v; want 3", n, err)
	}
	evs, _ := st.PendingEvents(0, 0)
	if len(evs) != 2 || evs[0].Seq != 4 || evs[1].Seq != 5 {
		t.Fatalf("left: %+v", evs)
	}
	if s := st.OutboxStats(); s.Dropped[DropAge] != 3 || s.Len != 2 {
		t.Fatalf("stats %+v", s)
	}
}
