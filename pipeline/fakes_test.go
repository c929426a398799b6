package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-dev/edged/face"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeImage counts its releases.
type fakeImage struct{ released *atomic.Int64 }

func (i fakeImage) Release() { i.released.Add(1) }

// images tracks how many fake images were made and released.
type images struct{ made, released atomic.Int64 }

func (im *images) frame(seq uint64, media time.Duration) *Frame {
	im.made.Add(1)
	return &Frame{Seq: seq, MediaTime: media, Time: time.Now(), Image: fakeImage{&im.released}, Width: 640, Height: 480}
}

func (im *images) check(t *testing.T) {
	t.Helper()
	if m, r := im.made.Load(), im.released.Load(); m != r {
		t.Errorf("images made %d, released %d: each must be released exactly once", m, r)
	}
}

// fileSource emits n frames at 30 fps media time, as fast as allowed, then
// ends (a recorded file).
type fileSource struct {
	n  int
	im *images
}

func (s *fileSource) Run(ctx context.Context, emit func(*Frame)) error {
	for i := 1; i <= s.n; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		emit(s.im.frame(uint64(i), time.Duration(i-1)*time.Second/30))
	}
	return nil
}

// liveSource emits frames every period until ctx ends.
type liveSource struct {
	period time.Duration
	im     *images
	n      atomic.Int64
	err    error // returned after failAfter frames when set
	failAt int64
}

func (s *liveSource) Run(ctx context.Context, emit func(*Frame)) error {
	t := time.NewTicker(s.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			n := s.n.Add(1)
			if s.err != nil && n > s.failAt {
				return s.err
			}
			emit(s.im.frame(uint64(n), 0))
		}
	}
}

// burstSource is a live camera run in lockstep with its first processor (a
// facer with started and gate): it emits frame 1, then each time the
// processor has taken a frame it emits burst frames before letting the
// processor finish, so the camera is exactly burst times faster than the
// processor whatever the machine's load. After rounds bursts (and the last
// frame processed) it closes idle and waits for ctx, as a live camera does.
type burstSource struct {
	burst, rounds int
	started       <-chan uint64   // the processor took a frame
	gate          chan<- struct{} // lets the processor finish it
	idle          chan struct{}
	im            *images
}

func (s *burstSource) Run(ctx context.Context, emit func(*Frame)) error {
	var seq uint64
	next := func() { seq++; emit(s.im.frame(seq, 0)) }
	next()
	for r := 0; r <= s.rounds; r++ {
		select {
		case <-s.started:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r < s.rounds {
			// A live emit must not block: the processor is busy.
			for range s.burst {
				next()
			}
		}
		select {
		case s.gate <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	close(s.idle)
	<-ctx.Done()
	return ctx.Err()
}

// facer adds one face per frame and emits a "recognized" event every
// `every` frames; it records the sequence numbers it saw.
type facer struct {
	every   int
	delay   time.Duration
	started chan<- uint64 // when non-nil, gets each frame's Seq before the gate
	gate    chan struct{} // when non-nil, each frame waits for a token
	mu      sync.Mutex
	seen    []uint64
	flushed int
	ticks   int
	failOn  map[uint64]error
}

func (f *facer) Name() string { return "facer" }

func (f *facer) Process(fr *Frame, acc Accumulator) error {
	if f.started != nil {
		f.started <- fr.Seq
	}
	if f.gate != nil {
		<-f.gate
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	f.mu.Lock()
	f.seen = append(f.seen, fr.Seq)
	f.mu.Unlock()
	if err := f.failOn[fr.Seq]; err != nil {
		return err
	}
	fr.Faces = append(fr.Faces, Face{Face: face.Face{Box: image.Rect(10, 10, 60, 60)}, Track: 1})
	if f.every > 0 && int(fr.Seq)%f.every == 0 {
		acc.AddEvent(Event{Payload: recognized{Track: fr.Seq}})
	}
	return nil
}

func (f *facer) Flush(acc Accumulator) error {
	f.mu.Lock()
	f.flushed++
	f.mu.Unlock()
	acc.AddEvent(Event{Payload: unknown{Track: 999}})
	return nil
}

func (f *facer) Tick(time.Time, Accumulator) error {
	f.mu.Lock()
	f.ticks++
	f.mu.Unlock()
	return nil
}

func (f *facer) seqs() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.seen...)
}

// frameSink records the frames it saw (faces included).
type frameSink struct {
	mu     sync.Mutex
	seqs   []uint64
	faces  int
	closed int
}

func (s *frameSink) WriteFrame(f *Frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqs = append(s.seqs, f.Seq)
	s.faces += len(f.Faces)
	return nil
}

func (s *frameSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	return nil
}

// eventSink records every event; it fails the first failures writes and
// can be slowed down.
type eventSink struct {
	mu       sync.Mutex
	events   []Event
	batches  int
	failures int
	delay    time.Duration
	closed   int
	closedAt int // len(events) when closed
}

func (s *eventSink) Name() string { return "sink" }

func (s *eventSink) WriteEvents(evs []Event) error {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures > 0 {
		s.failures--
		return errors.New("disk full")
	}
	s.batches++
	s.events = append(s.events, evs...)
	return nil
}

func (s *eventSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	s.closedAt = len(s.events)
	return nil
}

func (s *eventSink) byCamera() map[string][]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string][]uint64{}
	for _, e := range s.events {
		if r, ok := e.Payload.(recognized); ok {
			m[e.Camera] = append(m[e.Camera], r.Track)
		}
	}
	return m
}

func ascending(s []uint64) error {
	for i := 1; i < len(s); i++ {
		if s[i] <= s[i-1] {
			return fmt.Errorf("out of order at %d: %d after %d", i, s[i], s[i-1])
		}
	}
	return nil
}

func mqttCamera(string) Payload { return unknown{} }

// recognized and unknown stand in for the mqtt payload types.
type recognized struct{ Track uint64 }

func (recognized) Topic() string  { return "events/recognized" }
func (recognized) Retained() bool { return false }

type unknown struct{ Track uint64 }

func (unknown) Topic() string  { return "events/unknown" }
func (unknown) Retained() bool { return false }
