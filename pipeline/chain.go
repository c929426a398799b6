package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-dev/edged/internal/metrics"
)

// tickEvery is how often idle Ticker processors are ticked.
const tickEvery = time.Second

// Chain is one running camera.
type Chain struct {
	p          *Pipeline
	cam        Camera
	cancel     context.CancelFunc
	done       chan struct{}
	queues     []chan *Frame // queues[0] from the source; queues[i] into stage i
	stages     []*stageState // processors, then the output stage
	stageNames []string
	acc        accumulator

	seq          uint64
	lastAccepted time.Duration // media or wall clock of the last frame passed on
	haveAccepted bool

	mu  sync.Mutex
	err error

	frames, skipped, dropped, processed metrics.Counter
	e2e                                 metrics.Histogram
	rate                                rateMeter
}

type stageState struct {
	busy    atomic.Int64 // unix nanos (Options.Clock) since the stage works on a frame, 0 idle
	blocked atomic.Int64 // unix nanos since it waits for room in the event queue, 0 not
	latency metrics.Histogram
	errors  metrics.Counter
}

func newChain(p *Pipeline, cam Camera) *Chain {
	c := &Chain{
		p:    p,
		cam:  cam,
		done: make(chan struct{}),
		acc:  accumulator{p: p, camera: cam.Name},
	}
	n := cam.Name
	c.frames = p.m.frames.With(n)
	c.skipped = p.m.skipped.With(n)
	c.dropped = p.m.dropped.With(n)
	c.processed = p.m.processed.With(n)
	c.e2e = p.m.e2e.With(n)
	c.queues = make([]chan *Frame, len(cam.Processors)+1)
	c.queues[0] = make(chan *Frame, 1)
	for i := 1; i < len(c.queues); i++ {
		c.queues[i] = make(chan *Frame, p.opts.Queue)
	}
	seen := map[string]int{}
	for _, pr := range cam.Processors {
		name := stageName(pr)
		if seen[name]++; seen[name] > 1 {
			name = fmt.Sprintf("%s#%d", name, seen[name]) // two stages of one type
		}
		c.stageNames = append(c.stageNames, name)
		c.stages = append(c.stages, &stageState{latency: p.m.stage.With(n, name), errors: p.m.stageErrors.With(n, name)})
	}
	c.stageNames = append(c.stageNames, "output")
	c.stages = append(c.stages, &stageState{latency: p.m.stage.With(n, "output"), errors: p.m.stageErrors.With(n, "output")})
	return c
}

// Name is the camera's name.
func (c *Chain) Name() string { return c.cam.Name }

// Stop cancels the source and waits until the chain has drained.
func (c *Chain) Stop() {
	c.cancel()
	<-c.done
}

// Done is closed when the chain has drained.
func (c *Chain) Done() <-chan struct{} { return c.done }

// Err is the error that ended the source or a fatal processor error; nil
// after a cancel or the end of a file. Valid after Done.
func (c *Chain) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Chain) setErr(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// start launches the goroutines, consumers first.
func (c *Chain) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	c.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(len(c.cam.Processors) + 1)
	out := len(c.stages) - 1
	go func() { defer wg.Done(); c.runOutputs(c.queues[out], c.stages[out]) }()
	for i := len(c.cam.Processors) - 1; i >= 0; i-- {
		go func() { defer wg.Done(); c.runProcessor(i, c.queues[i], c.queues[i+1]) }()
	}
	go func() {
		c.runSource(ctx)
		wg.Wait()
		cancel()
		close(c.done)
	}()
}

func (c *Chain) runSource(ctx context.Context) {
	log := c.p.log.With("camera", c.cam.Name)
	q := c.queues[0]
	var interval time.Duration
	if c.cam.MaxFPS > 0 {
		interval = time.Duration(float64(time.Second) / c.cam.MaxFPS)
	}
	start := time.Now()
	emit := func(f *Frame) {
		if f == nil {
			return
		}
		now := time.Now()
		f.Camera = c.cam.Name
		if f.Seq == 0 {
			f.Seq = c.seq + 1
		}
		c.seq = f.Seq
		f.emitted = now
		c.frames.Inc()
		if interval > 0 {
			clock := now.Sub(start)
			if c.cam.Lossless {
				clock = f.MediaTime
			}
			// Accept a frame up to a tenth of the interval early, so a 30 fps
			// camera capped at 10 fps passes every third frame.
			if c.haveAccepted && clock-c.lastAccepted < interval-interval/10 {
				c.skipped.Inc()
				f.Release()
				return
			}
			c.lastAccepted, c.haveAccepted = clock, true
		}
		if c.cam.Lossless {
			q <- f
			return
		}
		select {
		case q <- f:
			return
		default:
		}
		// Full: replace the waiting frame. Only this goroutine sends on q, so
		// after taking the old frame (or finding the consumer took it) the
		// send cannot block.
		select {
		case old := <-q:
			old.Release()
			c.dropped.Inc()
		default:
		}
		q <- f
	}
	err := c.cam.Source.Run(ctx, emit)
	close(q)
	switch {
	case err == nil, errors.Is(err, context.Canceled) && ctx.Err() != nil:
		log.Debug("source ended", "frames", c.seq)
	default:
		log.Error("camera source failed", "err", err)
		c.setErr(err)
	}
}

func (c *Chain) runProcessor(i int, in <-chan *Frame, out chan<- *Frame) {
	defer close(out)
	pr := c.cam.Processors[i]
	st := c.stages[i]
	log := c.p.log.With("camera", c.cam.Name, "stage", c.stageNames[i])
	acc := accumulator{p: c.p, camera: c.cam.Name, st: st}
	failed := false
	var tick <-chan time.Time
	ticker, isTicker := pr.(Ticker)
	if isTicker {
		t := time.NewTicker(tickEvery)
		defer t.Stop()
		tick = t.C
	}
	lastFrame := time.Now()
	handle := func(err error) {
		if err == nil {
			return
		}
		st.errors.Inc()
		var fe *FatalError
		if errors.As(err, &fe) {
			log.Error("stage failed: stopping the camera", "err", err)
			c.setErr(err)
			failed = true
			c.cancel()
			return
		}
		if st.errors.Value() <= 10 || int(st.errors.Value())%100 == 0 {
			log.Warn("stage error: frame dropped", "err", err, "errors", st.errors.Value())
		}
	}
	for {
		select {
		case f, ok := <-in:
			if !ok {
				if fl, ok := pr.(Flusher); ok && !failed {
					handle(fl.Flush(acc))
				}
				return
			}
			if failed {
				f.Release()
				continue
			}
			t0 := time.Now()
			st.busy.Store(c.p.now().UnixNano())
			err := pr.Process(f, acc)
			st.busy.Store(0)
			st.latency.Observe(time.Since(t0).Seconds())
			lastFrame = time.Now()
			if err != nil {
				handle(err)
				f.Release()
				continue
			}
			out <- f
		case now := <-tick:
			if failed || now.Sub(lastFrame) < tickEvery/2 {
				continue
			}
			handle(ticker.Tick(now, acc))
		}
	}
}

func (c *Chain) runOutputs(in <-chan *Frame, st *stageState) {
	log := c.p.log.With("camera", c.cam.Name, "stage", "output")
	for f := range in {
		t0 := time.Now()
		st.busy.Store(c.p.now().UnixNano())
		for _, o := range c.cam.Outputs {
			if err := o.WriteFrame(f); err != nil {
				st.errors.Inc()
				var fe *FatalError
				if errors.As(err, &fe) {
					c.setErr(err)
					c.cancel()
				}
				if st.errors.Value() <= 10 {
					log.Warn("frame output failed", "output", stageName(o), "err", err)
				}
			}
		}
		st.busy.Store(0)
		f.Release()
		now := time.Now()
		st.latency.Observe(now.Sub(t0).Seconds())
		c.processed.Inc()
		c.e2e.Observe(now.Sub(f.emitted).Seconds())
		c.rate.add(now)
	}
	for _, o := range c.cam.Outputs {
		if cl, ok := o.(io.Closer); ok {
			if err := cl.Close(); err != nil {
				log.Error("closing frame output", "output", stageName(o), "err", err)
				c.setErr(err)
			}
		}
	}
}

// FPS is the rate of processed frames over the last second or so.
func (c *Chain) FPS() float64 { return c.rate.value(time.Now()) }

// rateMeter measures events per second over windows of about a second.
type rateMeter struct {
	mu          sync.Mutex
	windowStart time.Time
	n           int
	last        float64
}

func (r *rateMeter) add(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.windowStart.IsZero() {
		r.windowStart = now
	}
	r.n++
	if el := now.Sub(r.windowStart); el >= time.Second {
		r.last = float64(r.n) / el.Seconds()
		r.windowStart, r.n = now, 0
	}
}

func (r *rateMeter) value(now time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.windowStart.IsZero() {
		return 0
	}
	// A camera that stopped delivering decays to 0 instead of showing its
	// last rate forever.
	if el := now.Sub(r.windowStart); el > 2*time.Second {
		return float64(r.n) / el.Seconds()
	}
	return r.last
}
