package mqtt

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultBrokerAddr is where the embedded broker listens by default: loopback
// only, so a first run exposes nothing to the network.
const DefaultBrokerAddr = "127.0.0.1:1883"

// BrokerOptions configure the embedded broker. Zero fields take defaults.
type BrokerOptions struct {
	// Addr is host:port; default 127.0.0.1:1883. Port 0 picks a free port
	// (tests). Listening beyond loopback needs Users.
	Addr string `yaml:"addr"`
	// Prefix of the edged topics the ACL protects; default "edged".
	Prefix string `yaml:"prefix"`
	// Users that may connect with a password. When empty, any local client
	// may connect without one and may send commands (loopback is the trust
	// boundary). When set, every client needs a listed user (or edged's
	// own credentials).
	Users []BrokerUser `yaml:"users"`
	// MaxPacketSize in bytes; default 32 MiB (enroll commands carry images).
	MaxPacketSize uint32       `yaml:"max_packet_size"`
	Logger        *slog.Logger `yaml:"-"`
}

// BrokerUser is an account on the embedded broker.
type BrokerUser struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Commands lets the user publish to (and read) <prefix>/+/cmd/#.
	// Others can only read events, state and replies.
	Commands bool `yaml:"commands"`
}

// Broker is the embedded MQTT broker (mochi-mqtt), used when no broker URL
// is configured. Its ACL lets only edged itself publish events, state,
// availability and replies under the prefix, and only trusted clients send
// commands. For MQTT 5 requesters it also answers on the request's response
// topic (see responseHook).
type Broker struct {
	srv    *mochi.Server
	addr   string
	user   string
	pass   string
	closed atomic.Bool
	log    *slog.Logger
}

// StartBroker starts the embedded broker on addr (empty: 127.0.0.1:1883)
// with default options.
func StartBroker(addr string, log *slog.Logger) (*Broker, error) {
	return StartBrokerWith(BrokerOptions{Addr: addr, Logger: log})
}

// StartBrokerWith starts the embedded broker.
func StartBrokerWith(o BrokerOptions) (*Broker, error) {
	if o.Addr == "" {
		o.Addr = DefaultBrokerAddr
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = 32 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: broker addr %q: %w", ErrOptions, o.Addr, err)
	}
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" && len(o.Users) == 0 {
		return nil, fmt.Errorf("%w: broker addr %q is not loopback: configure broker users first", ErrOptions, o.Addr)
	}
	for _, p := range strings.Split(o.Prefix, "/") {
		if err := CheckSegment(p); err != nil {
			return nil, fmt.Errorf("%w: prefix %q: %w", ErrOptions, o.Prefix, err)
		}
	}
	for _, u := range o.Users {
		if u.Username == "" || u.Password == "" {
			return nil, fmt.Errorf("%w: broker users need a username and a password", ErrOptions)
		}
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("broker secret: %w", err)
	}
	b := &Broker{
		user: "edged-internal",
		pass: hex.EncodeToString(secret),
		log:  o.Logger.With("component", "broker"),
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = o.MaxPacketSize
	srv := mochi.New(&mochi.Options{
		InlineClient: true,
		Capabilities: caps,
		Logger:       b.log,
	})
	acl := &aclHook{prefix: o.Prefix, internalUser: b.user, internalPass: b.pass, users: o.Users}
	if err := srv.AddHook(acl, nil); err != nil {
		return nil, fmt.Errorf("broker acl hook: %w", err)
	}
	rh := &responseHook{srv: srv, prefix: o.Prefix, internalUser: b.user, pending: map[string][]pendingResponse{}}
	rh.inline = srv.NewClient(nil, mochi.LocalListener, "edged-response", true)
	rh.inline.Properties.ProtocolVersion = 5
	if err := srv.AddHook(rh, nil); err != nil {
		return nil, fmt.Errorf("broker response hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "edged", Address: o.Addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("broker listen on %s: %w", o.Addr, err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("broker serve: %w", err)
	}
	b.srv = srv
	b.addr = tcp.Address()
	b.log.Info("embedded mqtt broker listening", "addr", b.addr)
	return b, nil
}

// Addr is the address the broker listens on (with the real port).
func (b *Broker) Addr() string { return b.addr }

// URL is the broker URL for Options.Broker.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Credentials are edged's own account (random per start): only it may
// publish events, state, availability and replies. Put them in
// Options.Username / Password.
func (b *Broker) Credentials() (username, password string) { return b.user, b.pass }

// Close stops the broker and disconnects every client. Close the Client
// first so it drains the outbox and publishes "offline". Later calls return
// ErrClosed.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	return b.srv.Close()
}

// role of a connected client on the embedded broker.
type role int

const (
	roleReader  role = iota // events, state, replies
	roleCommand             // may also send commands
	roleEdged               // edged itself
)

// aclHook authenticates clients and restricts the edged topics. Only
// OnConnectAuthenticate and OnACLCheck are provided.
type aclHook struct {
	mochi.HookBase
	prefix       string
	internalUser string
	internalPass string
	users        []BrokerUser
	roles        sync.Map // *mochi.Client -> role, set at authentication
}

func (h *aclHook) ID() string { return "edged-acl" }

func (h *aclHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck || b == mochi.OnDisconnect
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// roleOf decides a client's role from its credentials (nil: refused).
func (h *aclHook) roleOf(user, pass []byte) (role, bool) {
	u, p := string(user), string(pass)
	if u == h.internalUser {
		return roleEdged, eq(p, h.internalPass)
	}
	if len(h.users) == 0 {
		return roleCommand, true
	}
	for _, bu := range h.users {
		if eq(u, bu.Username) && eq(p, bu.Password) {
			if bu.Commands {
				return roleCommand, true
			}
			return roleReader, true
		}
	}
	return roleReader, false
}

func (h *aclHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	r, ok := h.roleOf(pk.Connect.Username, pk.Connect.Password)
	if ok {
		h.roles.Store(cl, r)
	}
	return ok
}

func (h *aclHook) OnDisconnect(cl *mochi.Client, _ error, _ bool) { h.roles.Delete(cl) }

// OnACLCheck: under "<prefix>/<device>/", cmd/... is for command clients
// (write and read: requests carry face images), everything else is written
// only by edged. Other topics are open.
func (h *aclHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	v, ok := h.roles.Load(cl)
	if !ok {
		return false // not authenticated by this hook
	}
	r := v.(role)
	if r == roleEdged {
		return true
	}
	rest, under := strings.CutPrefix(topic, h.prefix+"/")
	if !under {
		return true
	}
	_, sub, _ := strings.Cut(rest, "/") // drop the device level
	// The broker checks reads again for every delivered message (with its
	// real topic), so a reader's "edged/#" subscription is fine: it just
	// never receives commands.
	isCmd := sub == topicCmd || strings.HasPrefix(sub, topicCmd+"/")
	if isCmd {
		return r == roleCommand
	}
	return !write // only edged publishes events, state, availability, replies
}

// responseHook implements the MQTT 5 request/response pattern on the
// embedded broker: edged's paho client speaks MQTT 3.1.1 and never sees a
// request's Response Topic, so the broker remembers it (with the correlation
// data) per request id when an MQTT 5 client publishes a command, and when
// edged publishes the reply on <prefix>/<device>/reply/<id> it sends a copy
// to that response topic. External brokers: replies go to reply/<id> only.
type responseHook struct {
	mochi.HookBase
	srv          *mochi.Server
	inline       *mochi.Client
	prefix       string
	internalUser string
	mu           sync.Mutex
	pending      map[string][]pendingResponse // device + "/" + reply level
	lastGC       time.Time
}

type pendingResponse struct {
	topic       string
	correlation []byte
	expires     time.Time
}

// pendingTTL bounds how long a response topic waits for its reply.
const pendingTTL = 10 * time.Minute

func (h *responseHook) ID() string { return "edged-v5-response" }

func (h *responseHook) Provides(b byte) bool {
	return b == mochi.OnPublish || b == mochi.OnPublished
}

// OnPublish runs after the ACL check and before the broker delivers the
// message. A request's response topic must be remembered here: mochi calls
// OnPublished only after delivering, so edged could receive the command and
// reply before the response topic was known, and the requester would wait
// forever (seen under load).
func (h *responseHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	h.see(cl, pk, true)
	return pk, nil
}

// OnPublished runs after delivery: a reply goes on to its response topic.
func (h *responseHook) OnPublished(cl *mochi.Client, pk packets.Packet) { h.see(cl, pk, false) }

// see remembers a request's response topic (before its delivery) and copies
// edged's reply to it (after the reply's delivery).
func (h *responseHook) see(cl *mochi.Client, pk packets.Packet, beforeDelivery bool) {
	rest, under := strings.CutPrefix(pk.TopicName, h.prefix+"/")
	if !under || cl == h.inline {
		return
	}
	device, sub, _ := strings.Cut(rest, "/")
	kind, level, _ := strings.Cut(sub, "/")
	switch {
	case beforeDelivery && kind == topicCmd && pk.Properties.ResponseTopic != "":
		if !mochi.IsValidFilter(pk.Properties.ResponseTopic, true) {
			return
		}
		id, ok := peekID(pk.Payload)
		if !ok {
			id = UnreadableID
		}
		key := device + "/" + id
		now := time.Now()
		h.mu.Lock()
		if now.Sub(h.lastGC) > time.Minute {
			h.gc(now)
			h.lastGC = now
		}
		if len(h.pending) < 10000 {
			h.pending[key] = append(h.pending[key], pendingResponse{
				topic:       pk.Properties.ResponseTopic,
				correlation: bytes.Clone(pk.Properties.CorrelationData),
				expires:     now.Add(pendingTTL),
			})
		}
		h.mu.Unlock()
	case !beforeDelivery && kind == topicReply && string(cl.Properties.Username) == h.internalUser:
		// (the ACL lets only edged's own account publish replies)
		key := device + "/" + level
		h.mu.Lock()
		q := h.pending[key]
		if len(q) == 0 {
			h.mu.Unlock()
			return
		}
		p := q[0]
		if time.Now().After(p.expires) {
			p.topic = ""
		}
		if len(q) == 1 {
			delete(h.pending, key)
		} else {
			h.pending[key] = q[1:]
		}
		h.mu.Unlock()
		if p.topic == "" {
			return
		}
		out := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName:   p.topic,
			Payload:     bytes.Clone(pk.Payload),
			PacketID:    1,
			Properties:  packets.Properties{CorrelationData: p.correlation},
		}
		// Not from inside the hook: the broker would re-enter its publish path.
		go func() {
			if err := h.srv.InjectPacket(h.inline, out); err != nil {
				h.srv.Log.Warn("v5 response not published", "topic", p.topic, "err", err)
			}
		}()
	}
}

// gc drops expired pending responses (mu held).
func (h *responseHook) gc(now time.Time) {
	for k, q := range h.pending {
		q = slicesDeleteExpired(q, now)
		if len(q) == 0 {
			delete(h.pending, k)
		} else {
			h.pending[k] = q
		}
	}
}

func slicesDeleteExpired(q []pendingResponse, now time.Time) []pendingResponse {
	out := q[:0]
	for _, p := range q {
		if now.Before(p.expires) {
			out = append(out, p)
		}
	}
	return out
}
