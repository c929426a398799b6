package mqtt

import (
	"fmt"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Raw publish and subscribe on the client's connection, for features
// that own absolute topics outside the device's base (package fleet:
// <prefix>/fleet/<name>/...). Events still go through the outbox; these
// do not, so the caller keeps its own queue (fleet keeps it in the store).
// Together they satisfy fleet.Transport and fleet.ConnectNotifier.

// extSubs are the subscriptions and connect hooks made through
// Subscribe and OnConnect, renewed on every connection (the session is
// clean).
type extSubs struct {
	mu    sync.Mutex
	subs  []extSub
	hooks []func()
}

type extSub struct {
	filter string
	fn     func(topic string, payload []byte)
}

// Publish sends payload on topic (absolute, e.g.
// "edged/fleet/home/people/01H...") with QoS 1 and waits for the broker's
// PUBACK (Options.PublishTimeout). It fails with ErrNotConnected while
// the client is not connected and ErrClosed after Close; nothing is kept
// for a retry.
func (c *Client) Publish(topic string, payload []byte, retained bool) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if !c.ready() {
		return ErrNotConnected
	}
	if payload == nil {
		payload = []byte{}
	}
	tok := c.pc.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(c.opts.PublishTimeout) {
		return fmt.Errorf("publish %s: no PUBACK within %s", topic, c.opts.PublishTimeout)
	}
	return tok.Error()
}

// Subscribe registers fn for the messages on filter (QoS 1): now, when
// connected, and again after every reconnection, before the client
// reports ready (the broker then sends the retained messages again). fn
// runs on paho's receive path, in order: it must return quickly (queue
// the message; never publish and wait from it).
func (c *Client) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	if c.closed.Load() {
		return ErrClosed
	}
	c.ext.mu.Lock()
	c.ext.subs = append(c.ext.subs, extSub{filter, fn})
	c.ext.mu.Unlock()
	if c.ready() {
		tok := c.pc.Subscribe(filter, 1, extHandler(fn))
		if !tok.WaitTimeout(c.opts.PublishTimeout) || tok.Error() != nil {
			// Made again on the next connection.
			c.log.Warn("mqtt subscribe failed; retried on reconnect", "filter", filter, "err", tok.Error())
		}
	}
	return nil
}

// OnConnect registers fn to run (in its own goroutine) after every
// connection is ready.
func (c *Client) OnConnect(fn func()) {
	c.ext.mu.Lock()
	c.ext.hooks = append(c.ext.hooks, fn)
	c.ext.mu.Unlock()
}

func extHandler(fn func(string, []byte)) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) { fn(m.Topic(), m.Payload()) }
}

// resubscribe makes the registered subscriptions on a new connection; it
// reports whether all succeeded (wait ends the session otherwise).
func (x *extSubs) resubscribe(pc paho.Client, wait func(string, paho.Token) bool) bool {
	x.mu.Lock()
	subs := append([]extSub(nil), x.subs...)
	x.mu.Unlock()
	for _, s := range subs {
		if !wait("subscribe "+s.filter, pc.Subscribe(s.filter, 1, extHandler(s.fn))) {
			return false
		}
	}
	return true
}

// connected runs the hooks after a connection became ready.
func (x *extSubs) connected() {
	x.mu.Lock()
	hooks := append([]func(){}, x.hooks...)
	x.mu.Unlock()
	for _, fn := range hooks {
		go fn()
	}
}
