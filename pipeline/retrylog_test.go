package pipeline

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the pipeline's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// An output outage (e.g. the store refusing writes on a full disk) is
// retried without losing events and logged once when it starts and once
// when it ends, not on every retry.
func TestOutputOutageIsLoggedOnce(t *testing.T) {
	var im images
	var logs syncBuffer
	events := &eventSink{failures: 3}
	cams := []Camera{{Name: "a", Source: &fileSource{n: 20, im: &im}, Processors: []Processor{&facer{every: 1}}, Lossless: true}}
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := Run(context.Background(), Options{Logger: log, EventBatch: 64}, cams, events); err != nil {
		t.Fatal(err)
	}
	if got := len(events.byCamera()["a"]); got != 20 {
		t.Fatalf("%d of 20 events arrived", got)
	}
	out := logs.String()
	if n := strings.Count(out, "event output failed"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "event output recovered"); n != 1 {
		t.Errorf("recovery logged %d times, want once:\n%s", n, out)
	}
	im.check(t)
}
