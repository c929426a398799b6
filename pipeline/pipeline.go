package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-dev/edged/internal/metrics"
	"github.com/edged-dev/edged/mqtt"
)

// Options configure a Pipeline. Zero values take the documented defaults.
type Options struct {
	// Queue is the capacity of the queues between processors (blocking).
	// Default 4.
	Queue int
	// EventQueue is the capacity of the queue from every camera to the
	// event outputs (blocking). Default 256.
	EventQueue int
	// EventBatch is the most events handed to WriteEvents at once. Default 64.
	EventBatch int
	// DrainTimeout bounds how long Close keeps retrying a failing event
	// output; the events it then gives up on are logged and counted in
	// edged_events_lost_total. Default 10s.
	DrainTimeout time.Duration
	// StuckAfter is how long a stage may work on one frame (not counting
	// waits for room in the event queue), or an event output's call may
	// take, before Healthy reports a hang. An output that fails and is
	// retried is not a hang. Default 60s.
	StuckAfter time.Duration
	// Clock is the time Healthy measures with. Default time.Now; tests
	// inject a fake one.
	Clock func() time.Time `yaml:"-"`
	// Logger defaults to slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// Metrics is where the pipeline registers its series; nil: a private
	// registry (see Pipeline.Metrics).
	Metrics *metrics.Registry `yaml:"-"`
}

func (o *Options) fill() {
	if o.Queue <= 0 {
		o.Queue = 4
	}
	if o.EventQueue <= 0 {
		o.EventQueue = 256
	}
	if o.EventBatch <= 0 {
		o.EventBatch = 64
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.StuckAfter <= 0 {
		o.StuckAfter = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewRegistry()
	}
}

// Camera is one chain: a source, its processors in order, and the outputs
// that see every processed frame.
type Camera struct {
	Name       string
	Source     Source
	Processors []Processor
	Outputs    []FrameOutput
	// MaxFPS caps the frames handed to the processors per second (0: all).
	// Lossless cameras count in media time, so a fast replay processes the
	// same frames as a paced one.
	MaxFPS float64
	// Lossless makes the source wait for the first processor instead of
	// replacing the queued frame (recorded files in fast mode).
	Lossless bool
}

// Pipeline runs camera chains and the shared event outputs.
type Pipeline struct {
	opts    Options
	log     *slog.Logger
	outputs []EventOutput
	m       *pipelineMetrics

	mu      sync.Mutex
	started bool
	closed  bool
	chains  map[string]*Chain
	wg      sync.WaitGroup // chains

	events       chan Event
	eventsMu     sync.RWMutex // write-locked to close events
	eventsClosed bool
	writerDone   chan struct{}
	writerErr    error
	closing      atomic.Int64 // unix nanos when Close began draining, 0 before

	wmu    sync.Mutex
	wstate OutputHealth // the writer's current call and retries

	countMu     sync.Mutex
	eventCounts map[string]uint64
}

// New returns a pipeline that writes events to outputs. Call Start, then
// AddCamera; Close stops everything.
func New(opts Options, outputs ...EventOutput) *Pipeline {
	opts.fill()
	p := &Pipeline{
		opts:       opts,
		log:        opts.Logger,
		outputs:    outputs,
		chains:     map[string]*Chain{},
		events:     make(chan Event, opts.EventQueue),
		writerDone: make(chan struct{}),

		eventCounts: map[string]uint64{},
	}
	p.m = newPipelineMetrics(opts.Metrics, p)
	return p
}

// Metrics returns the registry the pipeline records into.
func (p *Pipeline) Metrics() *metrics.Registry { return p.opts.Metrics }

// Start starts the event writer (the consumer of every camera).
func (p *Pipeline) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.started {
		return nil
	}
	p.started = true
	go p.writeEvents()
	return nil
}

// AddEvent publishes an event that is not about a frame (camera up/down
// from a capture callback). Like the processors' accumulator it blocks
// while the queue is full; after Close it logs and drops the event.
func (p *Pipeline) AddEvent(e Event) {
	p.eventsMu.RLock()
	defer p.eventsMu.RUnlock()
	if p.eventsClosed {
		p.log.Error("event after the pipeline closed: dropped", "topic", e.Payload.Topic(), "camera", e.Camera)
		p.m.eventsLost.With().Inc()
		return
	}
	// The event's identity is made once, here: every output (the outbox,
	// a replay's JSON lines, the log) and every redelivery carries the
	// same event_id.
	e.Payload = mqtt.Identify(e.Payload)
	p.events <- e
	t := eventType(e)
	p.m.events.With(t).Inc()
	p.countMu.Lock()
	p.eventCounts[t]++
	p.countMu.Unlock()
}

// AddCamera validates the camera and starts its chain: frame outputs,
// processors, then the source, which runs until ctx ends, the source ends
// or a processor fails fatally. The camera is removed when its chain has
// drained, so a name can be added again after Stop.
func (p *Pipeline) AddCamera(ctx context.Context, cam Camera) (*Chain, error) {
	if cam.Name == "" || cam.Source == nil {
		return nil, fmt.Errorf("%w: needs a name and a source", ErrInvalidCamera)
	}
	for i, pr := range cam.Processors {
		if pr == nil {
			return nil, fmt.Errorf("%w: camera %s: processor %d is nil", ErrInvalidCamera, cam.Name, i)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil, ErrClosed
	case !p.started:
		return nil, ErrNotStarted
	case p.chains[cam.Name] != nil:
		return nil, fmt.Errorf("%w: %s", ErrDuplicateCamera, cam.Name)
	}
	c := newChain(p, cam)
	p.chains[cam.Name] = c
	p.wg.Add(1)
	c.start(ctx)
	go func() {
		<-c.done
		p.mu.Lock()
		if p.chains[cam.Name] == c {
			delete(p.chains, cam.Name)
		}
		p.mu.Unlock()
		p.wg.Done()
	}()
	return c, nil
}

// Cameras returns the names of the running cameras.
func (p *Pipeline) Cameras() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.chains))
	for n := range p.chains {
		names = append(names, n)
	}
	return names
}

// Camera returns the running chain of a camera, or nil.
func (p *Pipeline) Camera(name string) *Chain {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.chains[name]
}

// Wait blocks until every camera added so far has ended (its source ended
// and its chain drained) or ctx ends.
func (p *Pipeline) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops every source, waits until every chain has drained, then lets
// the event outputs write what is queued and closes them. It returns the
// outputs' errors; later calls return ErrClosed.
func (p *Pipeline) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	started := p.started
	for _, c := range p.chains {
		c.cancel()
	}
	p.mu.Unlock()

	p.wg.Wait()
	p.closing.Store(time.Now().UnixNano())
	p.eventsMu.Lock()
	p.eventsClosed = true
	close(p.events)
	p.eventsMu.Unlock()
	if !started {
		return p.closeOutputs()
	}
	<-p.writerDone
	return p.writerErr
}

func (p *Pipeline) now() time.Time { return p.opts.Clock() }

// Run starts a pipeline for a fixed set of cameras, waits until every
// source has ended (end of file) or ctx is cancelled, and closes it. A
// cancelled ctx is not an error. It returns the first camera error joined
// with the outputs' errors.
func Run(ctx context.Context, opts Options, cameras []Camera, outputs ...EventOutput) error {
	p := New(opts, outputs...)
	if err := p.Start(); err != nil {
		return err
	}
	var chains []*Chain
	var errs []error
	for _, cam := range cameras {
		c, err := p.AddCamera(ctx, cam)
		if err != nil {
			errs = append(errs, err)
			break
		}
		chains = append(chains, c)
	}
	if len(errs) == 0 {
		_ = p.Wait(ctx)
	}
	errs = append(errs, p.Close())
	for _, c := range chains {
		errs = append(errs, c.Err())
	}
	return errors.Join(errs...)
}

func (p *Pipeline) writeEvents() {
	defer close(p.writerDone)
	batch := make([]Event, 0, p.opts.EventBatch)
	for e := range p.events {
		batch = append(batch[:0], e)
	fill:
		for len(batch) < p.opts.EventBatch {
			select {
			case e, ok := <-p.events:
				if !ok {
					break fill
				}
				batch = append(batch, e)
			default:
				break fill
			}
		}
		for _, o := range p.outputs {
			p.writeWithRetry(o, batch)
		}
	}
	p.writerErr = p.closeOutputs()
}

func (p *Pipeline) closeOutputs() error {
	var errs []error
	for _, o := range p.outputs {
		if err := o.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", stageName(o), err))
		}
	}
	return errors.Join(errs...)
}

// writeWithRetry retries a failing output with backoff. While the pipeline
// runs it never gives up (the processors block, the cameras drop frames);
// once Close has waited DrainTimeout it counts the batch as lost.
func (p *Pipeline) writeWithRetry(o EventOutput, batch []Event) {
	backoff := 50 * time.Millisecond
	start := time.Now()
	name := stageName(o)
	defer func() {
		p.wmu.Lock()
		p.wstate = OutputHealth{}
		p.wmu.Unlock()
	}()
	for attempt := 1; ; attempt++ {
		p.wmu.Lock()
		p.wstate.Name, p.wstate.CallSince = name, p.now()
		p.wmu.Unlock()
		err := o.WriteEvents(batch)
		p.wmu.Lock()
		p.wstate.CallSince = time.Time{}
		if err != nil {
			if p.wstate.FailingSince.IsZero() {
				p.wstate.FailingSince = p.now()
			}
			p.wstate.Attempts, p.wstate.LastErr = attempt, err
		}
		p.wmu.Unlock()
		if err == nil {
			if attempt > 1 {
				p.log.Info("event output recovered", "output", stageName(o), "attempts", attempt, "after", time.Since(start).Round(time.Millisecond))
			}
			return
		}
		p.m.outputErrors.With(stageName(o)).Inc()
		// Logged once when the outage starts, then at doubling intervals
		// (attempt 32, 64, ... : about 1, 2, 4, 8 minutes in at the 2s
		// backoff cap), so a long outage such as a full disk does not
		// flood the log; the recovery is logged once too.
		if attempt == 1 || (attempt >= 32 && attempt&(attempt-1) == 0) {
			p.log.Error("event output failed; retrying", "output", stageName(o), "events", len(batch), "attempt", attempt, "err", err)
		}
		if c := p.closing.Load(); c != 0 && time.Since(time.Unix(0, c)) > p.opts.DrainTimeout {
			p.log.Error("event output still failing at shutdown: events lost", "output", stageName(o), "events", len(batch), "err", err)
			p.m.eventsLost.With().Add(float64(len(batch)))
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

func stageName(v any) string {
	if n, ok := v.(Named); ok {
		return n.Name()
	}
	return fmt.Sprintf("%T", v)
}

func eventType(e Event) string {
	if e.Payload == nil {
		return "none"
	}
	t := e.Payload.Topic()
	for i := len(t) - 1; i >= 0; i-- {
		if t[i] == '/' {
			if t[:i] == "events" {
				return t[i+1:]
			}
			break
		}
	}
	// retained state topics: people/<id>/state, cameras/<name>/state
	for i := 0; i < len(t); i++ {
		if t[i] == '/' {
			return t[:i] + "_state"
		}
	}
	return t
}

// accumulator stamps the camera on events and forwards them. st, when
// set, is the stage that calls it: the time it waits for room in the event
// queue is marked, so Healthy does not take backpressure from a retrying
// output for a hung stage.
type accumulator struct {
	p      *Pipeline
	camera string
	st     *stageState
}

func (a accumulator) AddEvent(e Event) {
	if e.Camera == "" {
		e.Camera = a.camera
	}
	if a.st == nil || len(a.p.events) < cap(a.p.events) {
		a.p.AddEvent(e)
		return
	}
	t0 := a.p.now().UnixNano()
	a.st.blocked.Store(t0)
	a.p.AddEvent(e)
	a.st.blocked.Store(0)
	// The wait was not work: move the frame's start forward by it.
	if b := a.st.busy.Load(); b != 0 {
		a.st.busy.Store(b + (a.p.now().UnixNano() - t0))
	}
}
