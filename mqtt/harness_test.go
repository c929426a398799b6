package mqtt

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-dev/edged/internal/mosquittotest"
)

// testLogger logs to the test output with -v, else discards.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	w := &tWriter{t: t}
	// mochi's connection goroutines may still log after the test returned
	// (e.g. "use of closed network connection"); t.Log then panics, so lines
	// after the end of the test are dropped.
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func freePort(t testing.TB) int { return mosquittotest.FreePort(t) }

// mosquitto is a real Mosquitto broker (internal/mosquittotest).
type mosquitto = mosquittotest.Broker

// startMosquitto starts a broker; extra is appended to its config. Skips
// when the binary is missing.
func startMosquitto(t testing.TB, extra string) *mosquitto { return mosquittotest.Run(t, extra) }

// proxy is a TCP proxy that can cut every connection and refuse new ones,
// to simulate a network outage between edged and a broker that stays up.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.Cut() })
	return p
}

func (p *proxy) URL() string { return "tcp://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
	}
}

// Cut closes every proxied connection and refuses new ones until Restore.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// msg is a message a test client received.
type msg struct {
	topic    string
	payload  []byte
	retained bool
	at       time.Time
}

// testClient is a separate, real MQTT client (paho) as a user would run
// one: it subscribes on every (re)connect and records what it receives.
type testClient struct {
	t    testing.TB
	pc   paho.Client
	mu   sync.Mutex
	msgs []msg
	ch   chan struct{}
}

type testClientOpts struct {
	id       string
	clean    bool // false: persistent session (QoS 1 messages queue while away)
	user     string
	password string
	filters  []string
}

func newTestClient(t testing.TB, url string, o testClientOpts) *testClient {
	t.Helper()
	tc := &testClient{t: t, ch: make(chan struct{}, 1)}
	ready := make(chan struct{})
	var readyOnce sync.Once
	if o.id == "" {
		o.id = fmt.Sprintf("test-%d", time.Now().UnixNano())
	}
	handler := func(_ paho.Client, m paho.Message) {
		tc.mu.Lock()
		tc.msgs = append(tc.msgs, msg{topic: m.Topic(), payload: bytes.Clone(m.Payload()), retained: m.Retained(), at: time.Now()})
		tc.mu.Unlock()
		select {
		case tc.ch <- struct{}{}:
		default:
		}
	}
	// The default handler too: a persistent session's queued messages
	// arrive right after CONNACK, before the on-connect handler's
	// Subscribe has registered its route, and paho drops (after acking)
	// a message that matches no route when there is no default handler:
	// TestBrokerOutageShort saw 8 of 20 that way under load.
	po := paho.NewClientOptions().AddBroker(url).SetClientID(o.id).SetDefaultPublishHandler(handler).
		SetCleanSession(o.clean).SetUsername(o.user).SetPassword(o.password).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond).SetOrderMatters(true).
		SetOnConnectHandler(func(c paho.Client) {
			for _, f := range o.filters {
				c.Subscribe(f, 1, handler).WaitTimeout(5 * time.Second)
			}
			readyOnce.Do(func() { close(ready) })
		})
	tc.pc = paho.NewClient(po)
	tok := tc.pc.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("test client connect to %s: %v", url, tok.Error())
	}
	// The subscriptions happen in the on-connect handler; wait for them.
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("test client: subscriptions not done")
	}
	t.Cleanup(func() { tc.pc.Disconnect(100) })
	return tc
}

func (c *testClient) publish(topic string, payload []byte) {
	c.t.Helper()
	tok := c.pc.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// count returns how many messages were received so far.
func (c *testClient) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// all returns a copy of the messages received so far.
func (c *testClient) all() []msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]msg(nil), c.msgs...)
}

// waitFor returns the first message at index >= from that matches.
func (c *testClient) waitFor(from int, timeout time.Duration, what string, match func(msg) bool) (msg, int) {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		for i := from; i < len(c.msgs); i++ {
			if match(c.msgs[i]) {
				m := c.msgs[i]
				c.mu.Unlock()
				return m, i
			}
		}
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

func onTopic(topic string) func(msg) bool { return func(m msg) bool { return m.topic == topic } }

// startClient starts an edged Client for tests: device "dev1", fast
// reconnects; closed at cleanup.
func startClient(t testing.TB, url string, outbox Outbox, router *Router, mod func(*Options)) *Client {
	t.Helper()
	o := Options{
		Broker:         url,
		Device:         "dev1",
		ClientID:       fmt.Sprintf("edged-dev1-%d", time.Now().UnixNano()),
		BackoffMin:     100 * time.Millisecond,
		BackoffMax:     time.Second,
		ConnectTimeout: 2 * time.Second,
		KeepAlive:      5 * time.Second,
		DrainTimeout:   3 * time.Second,
		PollInterval:   200 * time.Millisecond,
		Logger:         testLogger(t),
	}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o, outbox, router)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startEmbedded starts the embedded broker on a free port.
func startEmbedded(t testing.TB, o BrokerOptions) *Broker {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	o.Logger = testLogger(t)
	b, err := StartBrokerWith(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// brokerKind runs f against a fresh Mosquitto and a fresh embedded broker.
// url is for edged (with its credentials on the embedded broker); the test
// clients connect to plainURL.
type brokerEnv struct {
	name     string
	url      string
	user     string
	password string
}

func forEachBroker(t *testing.T, f func(t *testing.T, env brokerEnv)) {
	t.Run("mosquitto", func(t *testing.T) {
		m := startMosquitto(t, "")
		f(t, brokerEnv{name: "mosquitto", url: m.URL()})
	})
	t.Run("embedded", func(t *testing.T) {
		b := startEmbedded(t, BrokerOptions{})
		u, p := b.Credentials()
		f(t, brokerEnv{name: "embedded", url: b.URL(), user: u, password: p})
	})
}

// withCreds sets edged's broker credentials from the env.
func (env brokerEnv) withCreds(o *Options) {
	o.Username, o.Password = env.user, env.password
}
