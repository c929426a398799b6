package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/internal/metrics"
)

func TestRunFileProcessesEveryFrameInOrder(t *testing.T) {
	var im images
	sinks := map[string]*frameSink{}
	facers := map[string]*facer{}
	var cams []Camera
	for _, name := range []string{"a", "b", "c"} {
		sinks[name], facers[name] = &frameSink{}, &facer{every: 10}
		cams = append(cams, Camera{
			Name:       name,
			Source:     &fileSource{n: 300, im: &im},
			Processors: []Processor{facers[name], &facer{}},
			Outputs:    []FrameOutput{sinks[name]},
			Lossless:   true,
		})
	}
	events := &eventSink{}
	reg := metrics.NewRegistry()
	if err := Run(context.Background(), Options{Logger: quietLogger(), Metrics: reg}, cams, events); err != nil {
		t.Fatal(err)
	}
	for name, s := range sinks {
		if len(s.seqs) != 300 || s.faces != 600 || s.closed != 1 {
			t.Errorf("camera %s: %d frames, %d faces, closed %d times", name, len(s.seqs), s.faces, s.closed)
		}
		if err := ascending(s.seqs); err != nil {
			t.Errorf("camera %s: %v", name, err)
		}
		if facers[name].flushed != 1 {
			t.Errorf("camera %s flushed %d times", name, facers[name].flushed)
		}
	}
	im.check(t)
	// 30 recognized per camera, in order per camera, plus one flush event
	// per processor; outputs closed once after the last event.
	for name, tracks := range events.byCamera() {
		if len(tracks) != 30 {
			t.Errorf("camera %s: %d events", name, len(tracks))
		}
		if err := ascending(tracks); err != nil {
			t.Errorf("camera %s events: %v", name, err)
		}
	}
	if len(events.events) != 96 || events.closed != 1 || events.closedAt != 96 {
		t.Errorf("events %d, closed %d at %d", len(events.events), events.closed, events.closedAt)
	}
	var b strings.Builder
	_ = reg.WriteText(&b)
	for _, want := range []string{
		`edged_frames_processed_total{camera="a"} 300`,
		`edged_events_total{type="recognized"} 90`,
		`edged_events_total{type="unknown"} 6`,
		`edged_stage_seconds_count{camera="b",stage="facer"} 300`,
		`edged_stage_seconds_count{camera="b",stage="facer#2"} 300`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestLiveSourceDropsOldestFrames: a live camera never waits for a slow
// processor; the frame waiting for it is replaced, so the processor always
// gets the latest frame. The camera runs in lockstep with the processor
// (burstSource: 10 frames per processed frame) instead of on timers, so the
// frames processed and dropped are exact under any load.
func TestLiveSourceDropsOldestFrames(t *testing.T) {
	const burst, rounds = 10, 5
	var im images
	started, gate := make(chan uint64), make(chan struct{})
	slow := &facer{started: started, gate: gate}
	sink := &frameSink{}
	src := &burstSource{burst: burst, rounds: rounds, started: started, gate: gate, idle: make(chan struct{}), im: &im}
	p := New(Options{Logger: quietLogger()})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := p.AddCamera(ctx, Camera{Name: "live", Source: src, Processors: []Processor{slow}, Outputs: []FrameOutput{sink}})
	if err != nil {
		t.Fatal(err)
	}
	// Only bounds a hang (a blocking emit, a lost frame).
	select {
	case <-src.idle:
	case <-time.After(30 * time.Second):
		t.Fatalf("camera and processor stuck: processed %v, stats %+v", slow.seqs(), c.Stats())
	}
	cancel()
	<-c.Done()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// While the processor works on a frame the camera emits burst frames:
	// the first burst-1 are dropped, the last is the next one processed.
	var want []uint64
	for r := range rounds + 1 {
		want = append(want, uint64(1+r*burst))
	}
	if got := slow.seqs(); !slices.Equal(got, want) {
		t.Errorf("processed frames %v, want the latest ones %v", got, want)
	}
	if !slices.Equal(sink.seqs, want) {
		t.Errorf("output frames %v, want %v", sink.seqs, want)
	}
	st := c.Stats()
	if st.Frames != 1+rounds*burst || st.Processed != rounds+1 || st.Dropped != rounds*(burst-1) {
		t.Errorf("frames %d processed %d dropped %d, want %d %d %d",
			st.Frames, st.Processed, st.Dropped, 1+rounds*burst, rounds+1, rounds*(burst-1))
	}
	im.check(t)
	if c.Err() != nil {
		t.Errorf("cancelled camera reports %v", c.Err())
	}
}

func TestEventsAreNeverDroppedWhenOutputFailsOrIsSlow(t *testing.T) {
	var im images
	events := &eventSink{failures: 3, delay: 2 * time.Millisecond}
	cams := []Camera{
		{Name: "a", Source: &fileSource{n: 500, im: &im}, Processors: []Processor{&facer{every: 1}}, Lossless: true},
		{Name: "b", Source: &fileSource{n: 500, im: &im}, Processors: []Processor{&facer{every: 1}}, Lossless: true},
	}
	err := Run(context.Background(), Options{Logger: quietLogger(), EventQueue: 4, EventBatch: 8}, cams, events)
	if err != nil {
		t.Fatal(err)
	}
	got := events.byCamera()
	for _, name := range []string{"a", "b"} {
		if len(got[name]) != 500 {
			t.Errorf("camera %s: %d of 500 events arrived", name, len(got[name]))
		}
		if err := ascending(got[name]); err != nil {
			t.Errorf("camera %s: %v", name, err)
		}
	}
	if events.batches >= 1000 {
		t.Errorf("%d batches for 1000 events: no batching", events.batches)
	}
	im.check(t)
}

func TestShutdownDrainsQueuesAndFlushesBeforeClosingOutputs(t *testing.T) {
	var im images
	gate := make(chan struct{})
	first := &facer{gate: gate, every: 1}
	second := &facer{delay: time.Millisecond}
	sink := &frameSink{}
	events := &eventSink{}
	p := New(Options{Logger: quietLogger(), Queue: 8}, events)
	_ = p.Start()
	ctx, cancel := context.WithCancel(context.Background())
	src := &fileSource{n: 20, im: &im}
	c, err := p.AddCamera(ctx, Camera{Name: "a", Source: src, Processors: []Processor{first, second}, Outputs: []FrameOutput{sink}, Lossless: true})
	if err != nil {
		t.Fatal(err)
	}
	// Let 10 frames through the first stage, then cancel while frames wait
	// in the queues.
	for i := 0; i < 10; i++ {
		gate <- struct{}{}
	}
	cancel()
	go func() {
		for range 30 {
			select {
			case gate <- struct{}{}:
			case <-time.After(time.Second):
				return
			}
		}
	}()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	// Every frame the source emitted before the cancel went through.
	if len(sink.seqs) != len(first.seqs()) || len(sink.seqs) < 10 {
		t.Errorf("first stage saw %d frames, output %d", len(first.seqs()), len(sink.seqs))
	}
	if first.flushed != 1 || second.flushed != 1 || sink.closed != 1 {
		t.Errorf("flushed %d %d, sink closed %d", first.flushed, second.flushed, sink.closed)
	}
	// Events: one per frame plus two flushes; the outputs closed after all.
	if want := len(sink.seqs) + 2; events.closedAt != want || events.closed != 1 {
		t.Errorf("events closed %d times at %d, want once at %d", events.closed, events.closedAt, want)
	}
	im.check(t)
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := p.AddCamera(context.Background(), Camera{Name: "x", Source: src}); !errors.Is(err, ErrClosed) {
		t.Errorf("AddCamera after Close: %v", err)
	}
}

func TestFatalErrorStopsOnlyThatCamera(t *testing.T) {
	var im images
	bad := &facer{failOn: map[uint64]error{5: Fatal(errors.New("model crashed"))}}
	good := &facer{}
	p := New(Options{Logger: quietLogger()})
	_ = p.Start()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cb, _ := p.AddCamera(ctx, Camera{Name: "bad", Source: &liveSource{period: time.Millisecond, im: &im}, Processors: []Processor{bad}})
	cg, _ := p.AddCamera(ctx, Camera{Name: "good", Source: &liveSource{period: time.Millisecond, im: &im}, Processors: []Processor{good}})
	select {
	case <-cb.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("camera with a fatal error did not stop")
	}
	var fe *FatalError
	if !errors.As(cb.Err(), &fe) {
		t.Errorf("bad camera error: %v", cb.Err())
	}
	select {
	case <-cg.Done():
		t.Fatal("good camera stopped too")
	case <-time.After(50 * time.Millisecond):
	}
	if names := p.Cameras(); len(names) != 1 || names[0] != "good" {
		t.Errorf("running cameras %v", names)
	}
	// The name can be used again once the chain has drained.
	c2, err := p.AddCamera(ctx, Camera{Name: "bad", Source: &fileSource{n: 3, im: &im}, Lossless: true})
	if err != nil {
		t.Fatal(err)
	}
	<-c2.Done()
	_ = p.Close()
	im.check(t)
}

func TestStageErrorDropsFrameAndSourceErrorIsReported(t *testing.T) {
	var im images
	flaky := &facer{failOn: map[uint64]error{2: errors.New("bad frame"), 4: errors.New("bad frame")}}
	sink := &frameSink{}
	srcErr := errors.New("camera unplugged")
	src := &liveSource{period: time.Millisecond, im: &im, err: srcErr, failAt: 6}
	err := Run(context.Background(), Options{Logger: quietLogger()},
		[]Camera{{Name: "a", Source: src, Processors: []Processor{flaky}, Outputs: []FrameOutput{sink}, Lossless: true}})
	if !errors.Is(err, srcErr) {
		t.Fatalf("Run: %v", err)
	}
	if len(sink.seqs) != 4 { // 6 frames, 2 failed
		t.Errorf("output saw %v", sink.seqs)
	}
	im.check(t)
}

func TestMaxFPSUsesMediaTimeForFiles(t *testing.T) {
	var im images
	sink := &frameSink{}
	err := Run(context.Background(), Options{Logger: quietLogger()}, []Camera{{
		Name: "a", Source: &fileSource{n: 90, im: &im}, Outputs: []FrameOutput{sink}, MaxFPS: 10, Lossless: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	// 3 s of 30 fps media at 10 fps: every third frame.
	if len(sink.seqs) != 30 || sink.seqs[1] != 4 {
		t.Errorf("processed %d frames: %v", len(sink.seqs), sink.seqs)
	}
	im.check(t)
}

func TestAddCameraErrors(t *testing.T) {
	var im images
	p := New(Options{Logger: quietLogger()})
	src := &fileSource{n: 1, im: &im}
	if _, err := p.AddCamera(context.Background(), Camera{Name: "a", Source: src}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("before Start: %v", err)
	}
	_ = p.Start()
	for _, cam := range []Camera{{Source: src}, {Name: "a"}, {Name: "a", Source: src, Processors: []Processor{nil}}} {
		if _, err := p.AddCamera(context.Background(), cam); !errors.Is(err, ErrInvalidCamera) {
			t.Errorf("%+v: %v", cam, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	live := &liveSource{period: time.Millisecond, im: &im}
	if _, err := p.AddCamera(ctx, Camera{Name: "a", Source: live}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddCamera(ctx, Camera{Name: "a", Source: live}); !errors.Is(err, ErrDuplicateCamera) {
		t.Errorf("duplicate: %v", err)
	}
	cancel()
	_ = p.Close()
	im.check(t)
}

func TestHealthyReportsStuckStageAndTickerRuns(t *testing.T) {
	var im images
	gate := make(chan struct{})
	stuck := &facer{gate: gate}
	idle := &facer{}
	p := New(Options{Logger: quietLogger(), StuckAfter: 50 * time.Millisecond})
	_ = p.Start()
	ctx, cancel := context.WithCancel(context.Background())
	_, _ = p.AddCamera(ctx, Camera{Name: "stuck", Source: &fileSource{n: 1, im: &im}, Processors: []Processor{stuck}, Lossless: true})
	_, _ = p.AddCamera(ctx, Camera{Name: "idle", Source: &liveSource{period: time.Hour, im: &im}, Processors: []Processor{idle}})
	time.Sleep(100 * time.Millisecond)
	if err := p.Healthy(); err == nil || !strings.Contains(err.Error(), "stuck") {
		t.Errorf("Healthy = %v", err)
	}
	close(gate)
	time.Sleep(1600 * time.Millisecond) // > one tick
	if err := p.Healthy(); err != nil {
		t.Errorf("Healthy after unblocking = %v", err)
	}
	idle.mu.Lock()
	ticks := idle.ticks
	idle.mu.Unlock()
	if ticks == 0 {
		t.Error("idle processor was never ticked")
	}
	cancel()
	_ = p.Close()
	im.check(t)
}

func TestAddEventAfterCloseIsCountedNotPanicking(t *testing.T) {
	p := New(Options{Logger: quietLogger(), Metrics: metrics.NewRegistry()})
	_ = p.Start()
	_ = p.Close()
	p.AddEvent(Event{Camera: "a", Payload: mqttCamera("a")})
	p.AddEvent(Event{Camera: "a", Payload: mqttCamera("a")})
	if n := p.m.eventsLost.With().Value(); n != 2 {
		t.Errorf("edged_events_lost_total = %v after two events past Close, want 2", n)
	}
	if n := p.m.events.With(eventType(Event{Camera: "a", Payload: mqttCamera("a")})).Value(); n != 0 {
		t.Errorf("events past Close counted as published: %v", n)
	}
}
