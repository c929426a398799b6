package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Client is edged's MQTT side: it drains the Outbox to the broker (QoS 1,
// in order, acking each event only after the broker's PUBACK), serves
// commands through a Router, keeps the retained availability topic and
// announces the device to Home Assistant.
//
// Lifecycle: New, Start, ... Close. Start returns at once; the client
// connects in the background and reconnects with exponential backoff
// forever, so a broker that is down at start or goes away later loses
// nothing: events wait in the outbox. All methods are safe for concurrent
// use.
type Client struct {
	opts   Options
	topics Topics
	outbox Outbox
	router *Router
	log    *slog.Logger
	pc     paho.Client

	jobs        chan job
	workerCtx   context.Context
	stopWorkers context.CancelFunc
	workersWG   sync.WaitGroup
	runWG       sync.WaitGroup

	started  atomic.Bool
	closed   atomic.Bool
	stopping atomic.Bool   // Close began: new commands are answered "unavailable"
	closing  chan struct{} // closed when the publisher must stop

	sessMu sync.Mutex
	sess   *session

	unacked []uint64 // PUBACKed but not deleted from the outbox (publisher goroutine only)

	camMu   sync.Mutex
	cameras []string // announced to Home Assistant
	removed []string // cameras whose discovery must be cleared

	// inflight are the commands with side effects running now, by
	// command and id: a repeat that arrives meanwhile waits for the
	// first's reply (at most Workers + QueueSize entries).
	inflightMu sync.Mutex
	inflight   map[string]*recentCall

	ext extSubs // Subscribe / OnConnect (transport.go)

	stats counters
}

// counters since New (read with Client.Stats).
type counters struct {
	Published   atomic.Uint64 // events acknowledged by the broker and acked in the outbox
	Dropped     atomic.Uint64 // events dropped because they can never be published (invalid topic, too large)
	Connects    atomic.Uint64 // successful connections
	Commands    atomic.Uint64 // commands received
	Busy        atomic.Uint64 // commands answered "busy"
	Repeats     atomic.Uint64 // repeated commands answered with their first reply
	ReplyErrors atomic.Uint64 // replies that could not be published
}

// StatsSnapshot is a copy of the client's counters since New, for metrics.
type StatsSnapshot struct {
	Published   uint64 // events acknowledged by the broker (and acked in the outbox)
	Dropped     uint64 // events dropped because they can never be published (invalid topic, too large)
	Connects    uint64 // successful connections
	Commands    uint64 // command messages received
	Busy        uint64 // commands answered "busy"
	Repeats     uint64 // repeated commands (same command and id) answered with their first reply
	ReplyErrors uint64 // replies that could not be published
	Connected   bool   // connected now
}

// session is one broker connection; lost is closed when it ends, ready
// when the subscriptions are in place.
type session struct {
	lost      chan struct{}
	once      sync.Once
	ready     chan struct{}
	readyOnce sync.Once
}

func newSession() *session {
	return &session{lost: make(chan struct{}), ready: make(chan struct{})}
}

func (s *session) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

func (s *session) end() { s.once.Do(func() { close(s.lost) }) }

type job struct {
	call Call
	stop bool // worker stop sentinel (queued behind the real jobs)
}

// recentCall is a command with side effects in progress; raw is its reply
// once done is closed.
type recentCall struct {
	done chan struct{}
	raw  []byte
}

// New checks the options and builds a client; nothing connects before
// Start. outbox and router are required (use NewRouter with no commands to
// serve none).
func New(opts Options, outbox Outbox, router *Router) (*Client, error) {
	if outbox == nil || router == nil {
		return nil, fmt.Errorf("%w: outbox and router are required", ErrOptions)
	}
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	topics, _ := NewTopics(opts.Prefix, opts.Device)
	tlsCfg, err := opts.tlsConfig()
	if err != nil {
		return nil, err
	}
	c := &Client{
		opts:     opts,
		topics:   topics,
		outbox:   outbox,
		router:   router,
		log:      opts.Logger.With("component", "mqtt", "broker", redactURL(opts.Broker)),
		jobs:     make(chan job, opts.QueueSize),
		closing:  make(chan struct{}),
		cameras:  append([]string(nil), opts.HomeAssistant.Cameras...),
		inflight: map[string]*recentCall{},
		sess:     newSession(),
	}
	c.sess.end()
	c.workerCtx, c.stopWorkers = context.WithCancel(context.Background())

	po := paho.NewClientOptions().
		AddBroker(opts.Broker).
		SetClientID(opts.ClientID).
		SetUsername(opts.Username).
		SetPassword(opts.Password).
		SetKeepAlive(opts.KeepAlive).
		SetPingTimeout(opts.ConnectTimeout).
		SetConnectTimeout(opts.ConnectTimeout).
		SetWriteTimeout(opts.PublishTimeout).
		// One place owns reconnection and backoff (run), so that on a lost
		// connection paho fails the in-flight tokens instead of resending
		// them from its memory store behind our back: the outbox is the
		// only store, and it is replayed in order after every reconnect.
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetCleanSession(true).
		SetResumeSubs(false).
		// Commands are decoded in the callback and queued in arrival order.
		SetOrderMatters(true).
		SetBinaryWill(topics.Availability(), []byte(Offline), 1, true).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(c.onConnectionLost)
	if tlsCfg != nil {
		po.SetTLSConfig(tlsCfg)
	}
	c.pc = paho.NewClient(po)
	return c, nil
}

// Topics returns the device's topic layout.
func (c *Client) Topics() Topics { return c.topics }

// Stats returns a snapshot of the counters.
func (c *Client) Stats() StatsSnapshot {
	return StatsSnapshot{
		Published:   c.stats.Published.Load(),
		Dropped:     c.stats.Dropped.Load(),
		Connects:    c.stats.Connects.Load(),
		Commands:    c.stats.Commands.Load(),
		Busy:        c.stats.Busy.Load(),
		Repeats:     c.stats.Repeats.Load(),
		ReplyErrors: c.stats.ReplyErrors.Load(),
		Connected:   c.Connected(),
	}
}

// Connected reports whether the client is connected to the broker now.
func (c *Client) Connected() bool { return c.pc.IsConnectionOpen() }

// ready: connected, and this connection's subscriptions are done.
func (c *Client) ready() bool {
	if !c.Connected() {
		return false
	}
	select {
	case <-c.currentSession().ready:
		return true
	default:
		return false
	}
}

// Start begins connecting, publishing and serving commands in the
// background.
func (c *Client) Start() error {
	if c.closed.Load() {
		return ErrClosed
	}
	if !c.started.CompareAndSwap(false, true) {
		return fmt.Errorf("mqtt: client already started")
	}
	for i := 0; i < c.opts.Workers; i++ {
		c.workersWG.Add(1)
		go c.worker()
	}
	c.runWG.Add(2)
	go c.run()
	go c.pruneCommands()
	return nil
}

// pruneEvery is how often the command log forgets replies past DedupTTL.
const pruneEvery = time.Hour

// pruneCommands forgets, at start and then every hour, the replies older
// than DedupTTL, so the command log stays bounded.
func (c *Client) pruneCommands() {
	defer c.runWG.Done()
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		if n, err := c.opts.Dedup.Prune(time.Now().Add(-c.opts.DedupTTL)); err != nil {
			c.log.Warn("command log: pruning old replies failed", "err", err)
		} else if n > 0 {
			c.log.Debug("command log: old replies forgotten", "replies", n)
		}
		select {
		case <-c.closing:
			return
		case <-t.C:
		}
	}
}

// WaitConnected blocks until the client is connected, subscribed to
// commands and has announced "online", or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !c.ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		case <-c.closing:
			return ErrClosed
		case <-t.C:
		}
	}
	return nil
}

// Flush blocks until the outbox is empty (everything published and acked)
// or ctx ends.
func (c *Client) Flush(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		evs, err := c.outbox.Pending(1)
		if err == nil && len(evs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if !c.Connected() {
				return fmt.Errorf("flush: %w: %w", ErrNotConnected, ctx.Err())
			}
			return fmt.Errorf("flush: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Close shuts down in order: new commands are answered "unavailable", the
// queued ones finish (DrainTimeout, then their context is cancelled), the
// outbox is drained (DrainTimeout), "offline" is published to the retained
// availability topic and the connection is closed cleanly. Events still in
// the outbox stay there for the next start. Later calls return ErrClosed.
func (c *Client) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	c.stopping.Store(true)
	if !c.started.Load() {
		close(c.closing)
		c.stopWorkers()
		return nil
	}
	// Commands: let queued ones finish while the connection is up, so their
	// replies go out.
	workersDone := make(chan struct{})
	go func() { c.workersWG.Wait(); close(workersDone) }()
	go c.stopWorkersWhenIdle()
	select {
	case <-workersDone:
	case <-time.After(c.opts.DrainTimeout):
		c.log.Warn("commands still running at shutdown; cancelling them")
		c.stopWorkers()
		<-workersDone
	}
	c.answerLeftovers()
	// Events.
	if c.Connected() {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.DrainTimeout)
		if err := c.Flush(ctx); err != nil {
			c.log.Warn("outbox not drained at shutdown; the rest is kept for the next start", "err", err)
		}
		cancel()
	}
	close(c.closing)
	c.runWG.Wait()
	if c.pc.IsConnectionOpen() {
		tok := c.pc.Publish(c.topics.Availability(), 1, true, Offline)
		if !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
			c.log.Warn("could not publish offline; the broker's last will covers it", "err", tok.Error())
		}
		c.pc.Disconnect(250)
	}
	c.stopWorkers()
	c.log.Info("mqtt client closed", "published", c.stats.Published.Load())
	return nil
}

// run owns the connection: connect with backoff, publish until the
// connection is lost, repeat until Close.
func (c *Client) run() {
	defer c.runWG.Done()
	attempt := 0
	for {
		select {
		case <-c.closing:
			return
		default:
		}
		sess := newSession()
		c.sessMu.Lock()
		c.sess = sess
		c.sessMu.Unlock()
		tok := c.pc.Connect()
		ok := true
		select {
		case <-tok.Done():
		case <-time.After(c.opts.ConnectTimeout + time.Second):
			ok = false
		case <-c.closing:
			// Close does not wait for a slow connect; a connection that
			// completes anyway says "offline" (after its "online") and
			// closes.
			go func() {
				if !tok.WaitTimeout(c.opts.ConnectTimeout+time.Second) || tok.Error() != nil {
					return
				}
				select {
				case <-sess.ready:
				case <-sess.lost:
				case <-time.After(c.opts.PublishTimeout):
				}
				c.pc.Publish(c.topics.Availability(), 1, true, Offline).WaitTimeout(2 * time.Second)
				c.pc.Disconnect(250)
			}()
			return
		}
		if !ok || tok.Error() != nil {
			err := tok.Error()
			if !ok {
				err = fmt.Errorf("connect timed out after %s", c.opts.ConnectTimeout)
			}
			sess.end()
			attempt++
			delay := backoff(attempt, c.opts.BackoffMin, c.opts.BackoffMax)
			lvl := slog.LevelWarn
			if attempt > 3 {
				lvl = slog.LevelDebug // one outage, not a log line every few seconds
			}
			c.log.Log(context.Background(), lvl, "mqtt connect failed", "attempt", attempt, "retry_in", delay.Round(time.Millisecond), "err", err)
			select {
			case <-c.closing:
				return
			case <-time.After(delay):
			}
			continue
		}
		if attempt > 0 {
			c.log.Info("mqtt connected", "after_attempts", attempt)
		} else {
			c.log.Info("mqtt connected")
		}
		attempt = 0
		c.stats.Connects.Add(1)
		c.publishLoop(sess)
		if c.pc.IsConnectionOpen() {
			select {
			case <-c.closing:
				return // Close publishes offline and disconnects
			default:
			}
			// The session was ended from our side (publish timeout,
			// failed subscribe): start over with a fresh connection.
			c.pc.Disconnect(100)
		}
		select {
		case <-c.closing:
			return
		case <-time.After(backoff(1, c.opts.BackoffMin, c.opts.BackoffMax)):
		}
	}
}

// backoff is the delay before attempt n (1-based): min doubling up to max,
// with +-20% jitter so a fleet does not reconnect in lockstep.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (c *Client) currentSession() *session {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	return c.sess
}

func (c *Client) onConnectionLost(_ paho.Client, err error) {
	c.log.Warn("mqtt connection lost", "err", err)
	c.currentSession().end()
}

// onConnect runs (in its own goroutine) after every successful connection:
// subscribe, announce availability and discovery.
func (c *Client) onConnect(pc paho.Client) {
	sess := c.currentSession()
	wait := func(what string, tok paho.Token) bool {
		if !tok.WaitTimeout(c.opts.PublishTimeout) {
			c.log.Error("mqtt "+what+" timed out; reconnecting", "timeout", c.opts.PublishTimeout)
			sess.end()
			return false
		}
		if err := tok.Error(); err != nil {
			c.log.Error("mqtt "+what+" failed; reconnecting", "err", err)
			sess.end()
			return false
		}
		return true
	}
	if !wait("subscribe commands", pc.Subscribe(c.topics.CommandFilter(), 1, c.onCommand)) {
		return
	}
	if !c.opts.HomeAssistant.Disabled {
		if !wait("subscribe home assistant status", pc.Subscribe(c.opts.HomeAssistant.Prefix+"/status", 1, c.onHAStatus)) {
			return
		}
	}
	if !c.ext.resubscribe(pc, wait) {
		return
	}
	if !wait("publish availability", pc.Publish(c.topics.Availability(), 1, true, Online)) {
		return
	}
	sess.markReady()
	c.ext.connected()
	c.publishDiscovery()
}

// publishLoop drains the outbox while the session lasts.
func (c *Client) publishLoop(sess *session) {
	poll := time.NewTicker(c.opts.PollInterval)
	defer poll.Stop()
	errDelay := c.opts.BackoffMin
	for {
		select {
		case <-sess.lost:
			return
		case <-c.closing:
			return
		default:
		}
		// Events the broker acknowledged but the outbox failed to delete
		// are deleted first, not published again.
		for len(c.unacked) > 0 {
			if err := c.outbox.Ack(c.unacked[0]); err != nil {
				c.log.Error("outbox ack failed", "seq", c.unacked[0], "err", err, "retry_in", errDelay)
				if !c.sleep(sess, errDelay) {
					return
				}
				errDelay = min(errDelay*2, c.opts.BackoffMax)
				continue
			}
			c.unacked = c.unacked[1:]
		}
		evs, err := c.outbox.Pending(c.opts.MaxInflight * 4)
		if err != nil {
			c.log.Error("outbox read failed", "err", err, "retry_in", errDelay)
			if !c.sleep(sess, errDelay) {
				return
			}
			errDelay = min(errDelay*2, c.opts.BackoffMax)
			continue
		}
		if len(evs) == 0 {
			select {
			case <-c.outbox.Notify():
			case <-poll.C:
			case <-sess.lost:
				return
			case <-c.closing:
				return
			}
			continue
		}
		if c.publishBatch(sess, evs) {
			errDelay = c.opts.BackoffMin
			continue
		}
		// A failed batch either ended the session (the loop returns) or hit
		// an outbox error: wait before trying the same events again.
		if !c.sleep(sess, errDelay) {
			return
		}
		errDelay = min(errDelay*2, c.opts.BackoffMax)
	}
}

// sleep waits d unless the session or the client ends first.
func (c *Client) sleep(sess *session, d time.Duration) bool {
	select {
	case <-sess.lost:
		return false
	case <-c.closing:
		return false
	case <-time.After(d):
		return true
	}
}

type inflight struct {
	ev  Event
	tok paho.Token
}

// publishBatch publishes evs in order with up to MaxInflight unacknowledged
// and acks each in the outbox after its PUBACK, oldest first. It stops at the
// first failure; the unacked events are published again later (at least
// once: a subscriber may see a duplicate, never a gap or a reordering of
// first deliveries).
func (c *Client) publishBatch(sess *session, evs []Event) bool {
	var q []inflight
	complete := func(f inflight) bool {
		timer := time.NewTimer(c.opts.PublishTimeout)
		defer timer.Stop()
		select {
		case <-f.tok.Done():
		case <-sess.lost:
			return false
		case <-timer.C:
			c.log.Error("no PUBACK in time; reconnecting", "seq", f.ev.Seq, "topic", f.ev.Topic, "timeout", c.opts.PublishTimeout)
			sess.end()
			return false
		}
		if err := f.tok.Error(); err != nil {
			c.log.Warn("publish failed; will retry", "seq", f.ev.Seq, "topic", f.ev.Topic, "err", err)
			if !c.pc.IsConnectionOpen() {
				sess.end()
			}
			return false
		}
		c.stats.Published.Add(1)
		if len(c.unacked) > 0 {
			c.unacked = append(c.unacked, f.ev.Seq) // keep acks in order
			return true
		}
		if err := c.outbox.Ack(f.ev.Seq); err != nil {
			// Retried (publishLoop) before anything else is published; if
			// edged stops first, the event is published again after the
			// restart.
			c.log.Error("outbox ack failed", "seq", f.ev.Seq, "err", err)
			c.unacked = append(c.unacked, f.ev.Seq)
		}
		return true
	}
	for _, ev := range evs {
		if len(c.unacked) > 0 {
			break // the outbox is failing: publish nothing new until acks work
		}
		if reason := c.unpublishable(ev); reason != "" {
			// It can never be published; keeping it would block every later
			// event forever.
			for _, f := range q {
				if !complete(f) {
					return false
				}
			}
			q = q[:0]
			c.log.Error("dropping an event that can never be published", "seq", ev.Seq, "topic", ev.Topic, "reason", reason)
			c.stats.Dropped.Add(1)
			if len(c.unacked) > 0 {
				c.unacked = append(c.unacked, ev.Seq)
			} else if err := c.outbox.Ack(ev.Seq); err != nil {
				c.log.Error("outbox ack failed", "seq", ev.Seq, "err", err)
				c.unacked = append(c.unacked, ev.Seq)
			}
			continue
		}
		for len(q) >= c.opts.MaxInflight {
			if !complete(q[0]) {
				return false
			}
			q = q[1:]
		}
		if len(c.unacked) > 0 {
			break
		}
		select {
		case <-sess.lost:
			return false
		default:
		}
		payload := ev.Payload
		if payload == nil {
			payload = []byte{}
		}
		q = append(q, inflight{ev: ev, tok: c.pc.Publish(c.topics.Full(ev.Topic), 1, ev.Retain, payload)})
	}
	for _, f := range q {
		if !complete(f) {
			return false
		}
	}
	return len(c.unacked) == 0
}

func (c *Client) unpublishable(ev Event) string {
	if err := CheckEventTopic(ev.Topic); err != nil {
		return err.Error()
	}
	if len(ev.Payload) > c.opts.MaxEventBytes {
		return fmt.Sprintf("payload of %d bytes, max_event_bytes is %d", len(ev.Payload), c.opts.MaxEventBytes)
	}
	return ""
}

// onCommand is paho's callback for .../cmd/+: decode, then queue for a
// worker; never blocks.
func (c *Client) onCommand(_ paho.Client, m paho.Message) {
	c.stats.Commands.Add(1)
	name := m.Topic()[strings.LastIndexByte(m.Topic(), '/')+1:]
	call := c.router.Decode(name, m.Payload())
	if c.stopping.Load() {
		go c.reply(call.ReplyTo(), Reply{ID: call.ID, Error: &ReplyError{Code: CodeUnavailable, Message: "edged is shutting down"}})
		return
	}
	select {
	case c.jobs <- job{call: call}:
	default:
		c.stats.Busy.Add(1)
		c.log.Warn("command queue full; answering busy", "command", name, "id", call.ID)
		go c.reply(call.ReplyTo(), Reply{ID: call.ID, Error: &ReplyError{Code: CodeBusy, Message: fmt.Sprintf("%d commands are waiting; retry later", c.opts.QueueSize)}})
	}
}

// stopWorkersWhenIdle makes workers exit once the jobs queued before it are
// done.
func (c *Client) stopWorkersWhenIdle() {
	for i := 0; i < c.opts.Workers; i++ {
		select {
		case c.jobs <- job{stop: true}:
		case <-c.workerCtx.Done():
			return
		}
	}
}

// answerLeftovers replies "unavailable" to commands queued after the
// workers stopped (they raced with Close).
func (c *Client) answerLeftovers() {
	for {
		select {
		case j := <-c.jobs:
			if !j.stop {
				c.reply(j.call.ReplyTo(), Reply{ID: j.call.ID, Error: &ReplyError{Code: CodeUnavailable, Message: "edged is shutting down"}})
			}
		default:
			return
		}
	}
}

func (c *Client) worker() {
	defer c.workersWG.Done()
	for {
		var j job
		select {
		case j = <-c.jobs:
		case <-c.workerCtx.Done():
			return
		}
		if j.stop {
			return
		}
		c.serve(j)
	}
}

// serve runs one command and publishes its reply. A command with side
// effects (Router.HandleOnce) runs once per (command, id) within DedupTTL,
// whatever the MQTT DUP flag: a repeat gets the first reply again, from
// the command log, or, while the first still runs, once it is done.
func (c *Client) serve(j job) {
	call := j.call
	if call.Err() != nil || !call.idOK || !c.router.Once(call.Command) {
		c.publishReply(call.ReplyTo(), call.ID, c.runCall(call))
		return
	}
	key := dedupKey(call.Command, call.ID)
	c.inflightMu.Lock()
	if prev, running := c.inflight[key]; running {
		c.inflightMu.Unlock()
		<-prev.done
		c.stats.Repeats.Add(1)
		c.log.Info("repeated command answered with the first one's reply", "command", call.Command, "id", call.ID)
		c.publishReply(call.ReplyTo(), call.ID, prev.raw)
		return
	}
	rc := &recentCall{done: make(chan struct{})}
	c.inflight[key] = rc
	c.inflightMu.Unlock()
	defer func() {
		c.inflightMu.Lock()
		delete(c.inflight, key)
		c.inflightMu.Unlock()
		close(rc.done)
	}()

	if raw, at, found, err := c.opts.Dedup.Reply(call.Command, call.ID); err != nil {
		// Without the log the command may run twice: say so, and run it
		// (refusing would make every command fail while the store does).
		c.log.Warn("command log unreadable: a repeated command may run again", "command", call.Command, "id", call.ID, "err", err)
	} else if found && time.Since(at) < c.opts.DedupTTL {
		rc.raw = raw
		c.stats.Repeats.Add(1)
		c.log.Info("repeated command answered with its first reply", "command", call.Command, "id", call.ID, "answered", at)
		c.publishReply(call.ReplyTo(), call.ID, raw)
		return
	}
	ctx, cancel := context.WithTimeout(c.workerCtx, c.opts.CommandTimeout)
	reply := c.router.Run(ctx, call)
	cancel()
	rc.raw = c.marshalReply(reply)
	if reply.OK {
		if err := c.opts.Dedup.Remember(call.Command, call.ID, rc.raw, time.Now()); err != nil {
			c.log.Warn("command log: reply not remembered; a repeat would run again", "command", call.Command, "id", call.ID, "err", err)
		}
	}
	c.publishReply(call.ReplyTo(), call.ID, rc.raw)
}

// runCall runs a command that is not de-duplicated and marshals its reply.
func (c *Client) runCall(call Call) []byte {
	ctx, cancel := context.WithTimeout(c.workerCtx, c.opts.CommandTimeout)
	defer cancel()
	return c.marshalReply(c.router.Run(ctx, call))
}

// reply publishes a reply on <base>/reply/<to>.
func (c *Client) reply(to string, r Reply) { c.publishReply(to, r.ID, c.marshalReply(r)) }

func (c *Client) marshalReply(r Reply) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		c.log.Error("reply does not marshal", "id", r.ID, "err", err)
		b, _ = json.Marshal(Reply{ID: r.ID, Error: &ReplyError{Code: CodeInternal, Message: "internal error (see edged's log)"}})
	}
	return b
}

// publishReply publishes a marshalled reply on <base>/reply/<to>.
func (c *Client) publishReply(to, id string, b []byte) {
	tok := c.pc.Publish(c.topics.Reply(to), 1, false, b)
	if !tok.WaitTimeout(c.opts.PublishTimeout) || tok.Error() != nil {
		c.stats.ReplyErrors.Add(1)
		c.log.Warn("reply not published", "id", id, "err", tok.Error())
	}
}

// redactURL drops user info from a broker URL for logs.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.LastIndexByte(s[i+3:], '@'); j >= 0 {
			return s[:i+3] + s[i+3+j+1:]
		}
	}
	return s
}
