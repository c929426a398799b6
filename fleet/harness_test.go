package fleet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/internal/mosquittotest"
	"github.com/edged-dev/edged/store"
)

// memBroker is an in-memory MQTT-like broker for the fast unit tests:
// retained messages, '+' filters, synchronous delivery.
type memBroker struct {
	mu       sync.Mutex
	retained map[string][]byte
	subs     []*memClient
	bytes    int
}

func newMemBroker() *memBroker { return &memBroker{retained: map[string][]byte{}} }

type memClient struct {
	b    *memBroker
	mu   sync.Mutex
	down bool
	subs map[string]func(string, []byte)
	// tamper, when set, rewrites what this client publishes (a forger).
	tamper func(topic string, payload []byte) []byte
}

func (b *memBroker) client() *memClient {
	c := &memClient{b: b, subs: map[string]func(string, []byte){}}
	b.mu.Lock()
	b.subs = append(b.subs, c)
	b.mu.Unlock()
	return c
}

func match(filter, topic string) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	if len(f) != len(t) {
		return false
	}
	for i := range f {
		if f[i] != "+" && f[i] != t[i] {
			return false
		}
	}
	return true
}

func (c *memClient) Publish(topic string, payload []byte, retained bool) error {
	c.mu.Lock()
	down, tamper := c.down, c.tamper
	c.mu.Unlock()
	if down {
		return ErrNotConnected
	}
	if tamper != nil {
		payload = tamper(topic, payload)
	}
	b := c.b
	b.mu.Lock()
	b.bytes += len(payload)
	if retained {
		if len(payload) == 0 {
			delete(b.retained, topic)
		} else {
			b.retained[topic] = bytes.Clone(payload)
		}
	}
	subs := append([]*memClient(nil), b.subs...)
	b.mu.Unlock()
	for _, s := range subs {
		s.deliver(topic, payload)
	}
	return nil
}

func (c *memClient) deliver(topic string, payload []byte) {
	c.mu.Lock()
	if c.down {
		c.mu.Unlock()
		return
	}
	var fns []func(string, []byte)
	for f, fn := range c.subs {
		if match(f, topic) {
			fns = append(fns, fn)
		}
	}
	c.mu.Unlock()
	for _, fn := range fns {
		fn(topic, payload)
	}
}

func (c *memClient) Subscribe(filter string, fn func(string, []byte)) error {
	c.mu.Lock()
	c.subs[filter] = fn
	c.mu.Unlock()
	c.b.mu.Lock()
	var ret [][2]string
	for t, p := range c.b.retained {
		if match(filter, t) {
			ret = append(ret, [2]string{t, string(p)})
		}
	}
	c.b.mu.Unlock()
	for _, m := range ret {
		fn(m[0], []byte(m[1]))
	}
	return nil
}

// setDown cuts (or restores) the client's connection; on restore the
// retained messages are delivered again, as after a resubscription.
func (c *memClient) setDown(down bool) {
	c.mu.Lock()
	c.down = down
	subs := make(map[string]func(string, []byte), len(c.subs))
	for f, fn := range c.subs {
		subs[f] = fn
	}
	c.mu.Unlock()
	if !down {
		for f, fn := range subs {
			_ = c.Subscribe(f, fn)
		}
	}
}

// device is one edged as far as the fleet is concerned: a store, a
// gallery, an enroller and a Sync.
type device struct {
	t       testing.TB
	name    string
	dir     string
	opts    Options
	st      *store.Store
	g       *gallery.Gallery
	en      *enroll.Enroller
	s       *Sync
	sync    atomic.Pointer[Sync]
	cancel  context.CancelFunc
	done    chan error
	fsync   bool // commits are fsynced (benchmarks); tests skip it
	mu      sync.Mutex
	changes []Change
}

func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() || os.Getenv("FLEET_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(&tWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	t  testing.TB
	mu sync.Mutex
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newDevice opens a store in a temp dir; start runs the Sync.
func newDevice(t testing.TB, name string, opts Options) *device {
	t.Helper()
	return newDeviceSync(t, name, opts, false)
}

func newDeviceSync(t testing.TB, name string, opts Options, fsync bool) *device {
	t.Helper()
	d := &device{t: t, name: name, dir: filepath.Join(t.TempDir(), name), opts: opts, fsync: fsync}
	d.open()
	t.Cleanup(d.stop)
	return d
}

func (d *device) open() {
	d.t.Helper()
	st, err := store.Open(store.Options{Dir: d.dir, NoSync: !d.fsync, MinFreeBytes: -1})
	if err != nil {
		d.t.Fatal(err)
	}
	d.st = st
	d.g = gallery.New(gallery.Options{Space: gallery.MobileFaceNetSpace})
	// As the daemon wires it: the enroller reports local changes to the
	// fleet, and the fleet's changes are refreshed into the gallery.
	d.en = enroll.New(st, d.g, nil, nil, enroll.Options{Backbone: d.backbone(), Changed: func(ids ...string) {
		if s := d.sync.Load(); s != nil {
			s.Changed(ids...)
		}
	}})
}

func (d *device) backbone() string {
	if d.opts.Backbone != "" {
		return d.opts.Backbone
	}
	return "mobilefacenet"
}

// start runs the device's Sync on tr.
func (d *device) start(tr Transport) {
	d.t.Helper()
	o := d.opts
	o.Name = "home"
	o.Device = d.name
	o.Backbone = d.backbone()
	o.Store = d.st
	o.Transport = tr
	o.Logger = testLogger(d.t).With("device", d.name)
	en := d.en
	o.OnChange = func(cs []Change) {
		d.mu.Lock()
		d.changes = append(d.changes, cs...)
		d.mu.Unlock()
		ids := make([]string, len(cs))
		for i, c := range cs {
			ids[i] = c.PersonID
		}
		if err := en.Refresh(ids...); err != nil {
			d.t.Errorf("%s: refresh: %v", d.name, err)
		}
	}
	s, err := New(o)
	if err != nil {
		d.t.Fatal(err)
	}
	d.s = s
	d.sync.Store(s)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.done = make(chan error, 1)
	go func() { d.done <- s.Run(ctx) }()
}

// stop ends the Sync and closes the store (restart: open, start).
func (d *device) stop() {
	d.sync.Store(nil)
	if d.cancel != nil {
		d.cancel()
		select {
		case err := <-d.done:
			if err != nil {
				d.t.Errorf("%s: Run: %v", d.name, err)
			}
		case <-time.After(10 * time.Second):
			d.t.Errorf("%s: Run did not return", d.name)
		}
		d.cancel = nil
	}
	if d.st != nil {
		_ = d.st.Close()
		d.st = nil
	}
}

// face returns an embedding of person seed (192-d, noisy per sample).
func face(seed uint64, sample int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, 192)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	n := rand.New(rand.NewPCG(seed, uint64(sample)+2))
	for i := range v {
		v[i] += 0.2 * float32(n.NormFloat64())
	}
	return v
}

// enroll enrolls n faces of person seed under name (created when new)
// through the enroller, then tells the fleet.
func (d *device) enroll(name string, seed uint64, n int) string {
	d.t.Helper()
	return d.enrollTo(name, "", seed, n)
}

// enrollTo enrolls into the person with id personID (name unused) or, when
// it is empty, the person called name.
func (d *device) enrollTo(name, personID string, seed uint64, n int) string {
	d.t.Helper()
	var faces []enroll.Embedding
	for i := 0; i < n; i++ {
		faces = append(faces, enroll.Embedding{Embedding: face(seed, i+int(time.Now().UnixNano()%1000)), Quality: 0.9, Source: store.SourceFile})
	}
	res, err := d.en.EnrollEmbeddings(context.Background(), name, personID, faces)
	if err != nil {
		d.t.Fatalf("%s: enroll %s: %v", d.name, name, err)
	}
	if d.s != nil {
		d.s.Changed(res.PersonID)
	}
	return res.PersonID
}

func (d *device) changeList() []Change {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Change(nil), d.changes...)
}

func (d *device) person(id string) (store.Person, []store.Sample, bool) {
	p, err := d.st.Person(id)
	if err != nil {
		return store.Person{}, nil, false
	}
	ss, err := d.st.Samples(id)
	if err != nil {
		d.t.Fatal(err)
	}
	return p, ss, true
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// --- a real Mosquitto (internal/mosquittotest) ---

type mosquitto = mosquittotest.Broker

// startMosquitto runs a private broker on a free loopback port; extra is
// appended to its config. Skips when mosquitto is not installed.
func startMosquitto(t testing.TB, extra string) *mosquitto { return mosquittotest.Run(t, extra) }

func freePort(t testing.TB) int { return mosquittotest.FreePort(t) }

// dial connects a PahoTransport for device name and waits for the
// connection.
func dial(t testing.TB, m *mosquitto, name string) *PahoTransport {
	t.Helper()
	tr, err := DialPaho(PahoOptions{Broker: m.URL(), ClientID: "edged-" + name + fmt.Sprint(rand.Uint32()), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	waitFor(t, 10*time.Second, name+" connected", tr.Connected)
	return tr
}

var _ = io.Discard
