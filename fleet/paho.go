package fleet

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// ErrNotConnected is returned by PahoTransport.Publish while the
// connection is down (the fleet retries).
var ErrNotConnected = errors.New("fleet: not connected to the broker")

// PahoOptions configure a PahoTransport.
type PahoOptions struct {
	Broker   string // tcp://host:1883, ssl://..., ws://...; required
	ClientID string // required, unique on the broker
	Username string
	Password string
	// TLS configures ssl://, tls://, mqtts:// and wss:// brokers (nil:
	// paho's default, the system roots).
	TLS *tls.Config
	// Timeout bounds a connection attempt and the wait for a PUBACK or
	// SUBACK; default 10s.
	Timeout time.Duration
	// Will, when set, is published retained by the broker if the
	// connection dies (e.g. an offline member record).
	WillTopic   string
	WillPayload []byte
	Logger      *slog.Logger
}

// PahoTransport is a Transport over its own paho connection: for tests,
// tools, and a daemon that does not share its MQTT client. It reconnects
// by itself and subscribes again after every connection.
type PahoTransport struct {
	c       paho.Client
	timeout time.Duration
	log     *slog.Logger

	mu        sync.Mutex
	subs      map[string]func(topic string, payload []byte)
	onConnect []func()
}

var _ Transport = (*PahoTransport)(nil)
var _ ConnectNotifier = (*PahoTransport)(nil)

// DialPaho starts connecting in the background and returns at once;
// Publish fails with ErrNotConnected until the connection is up.
func DialPaho(o PahoOptions) (*PahoTransport, error) {
	if o.Broker == "" || o.ClientID == "" {
		return nil, fmt.Errorf("%w: paho transport needs a broker and a client id", ErrOptions)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t := &PahoTransport{timeout: o.Timeout, log: o.Logger, subs: map[string]func(string, []byte){}}
	po := paho.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientID).
		SetUsername(o.Username).
		SetPassword(o.Password).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(o.Timeout).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(true). // the callback only queues; order per topic is kept
		SetOnConnectHandler(t.connected).
		SetConnectionLostHandler(func(_ paho.Client, err error) { t.log.Warn("fleet transport: connection lost", "err", err) })
	if o.TLS != nil {
		po.SetTLSConfig(o.TLS)
	}
	if o.WillTopic != "" {
		po.SetBinaryWill(o.WillTopic, o.WillPayload, 1, true)
	}
	t.c = paho.NewClient(po)
	t.c.Connect() // retried in the background (SetConnectRetry)
	return t, nil
}

func (t *PahoTransport) connected(c paho.Client) {
	t.mu.Lock()
	subs := make(map[string]paho.MessageHandler, len(t.subs))
	for f, fn := range t.subs {
		subs[f] = handler(fn)
	}
	hooks := append([]func(){}, t.onConnect...)
	t.mu.Unlock()
	for f, h := range subs {
		if tok := c.Subscribe(f, 1, h); !tok.WaitTimeout(t.timeout) || tok.Error() != nil {
			t.log.Error("fleet transport: subscribe failed", "filter", f, "err", tok.Error())
		}
	}
	for _, fn := range hooks {
		fn()
	}
}

func handler(fn func(string, []byte)) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) { fn(m.Topic(), m.Payload()) }
}

// Publish implements Transport (QoS 1, waits for the PUBACK).
func (t *PahoTransport) Publish(topic string, payload []byte, retained bool) error {
	if !t.c.IsConnectionOpen() {
		return ErrNotConnected
	}
	tok := t.c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(t.timeout) {
		return fmt.Errorf("publish %s: no PUBACK within %s", topic, t.timeout)
	}
	return tok.Error()
}

// Subscribe implements Transport.
func (t *PahoTransport) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	t.mu.Lock()
	t.subs[filter] = fn
	t.mu.Unlock()
	if t.c.IsConnectionOpen() {
		// A failure here is logged, not returned: the subscription is
		// registered and made again on the next connection.
		tok := t.c.Subscribe(filter, 1, handler(fn))
		if !tok.WaitTimeout(t.timeout) || tok.Error() != nil {
			t.log.Warn("fleet transport: subscribe failed; retried on reconnect", "filter", filter, "err", tok.Error())
		}
	}
	return nil
}

// OnConnect implements ConnectNotifier.
func (t *PahoTransport) OnConnect(fn func()) {
	t.mu.Lock()
	t.onConnect = append(t.onConnect, fn)
	t.mu.Unlock()
}

// Connected reports whether the connection is up.
func (t *PahoTransport) Connected() bool { return t.c.IsConnectionOpen() }

// Close disconnects (cleanly: no will).
func (t *PahoTransport) Close() { t.c.Disconnect(250) }
