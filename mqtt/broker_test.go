package mqtt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// rawConnect connects a plain paho client without reconnects; it returns
// the connect error.
func rawConnect(url, user, pass string) (paho.Client, error) {
	pc := paho.NewClient(paho.NewClientOptions().AddBroker(url).
		SetClientID(fmt.Sprintf("raw-%d", time.Now().UnixNano())).
		SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectTimeout(3 * time.Second))
	tok := pc.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	return pc, tok.Error()
}

// TestEmbeddedBrokerACL: only edged publishes events and replies; only
// command users send (and see) commands; unknown users are refused.
func TestEmbeddedBrokerACL(t *testing.T) {
	b := startEmbedded(t, BrokerOptions{Users: []BrokerUser{
		{Username: "homeassistant", Password: "ha-pw"},
		{Username: "admin", Password: "admin-pw", Commands: true},
	}})
	u, p := b.Credentials()
	svc := newFakeService()
	c := startClient(t, b.URL(), NewMemOutbox(), NewServiceRouter(svc, Limits{}, nil), func(o *Options) { o.Username, o.Password = u, p })
	waitConnected(t, c)
	tp := c.Topics()

	admin := newTestClient(t, b.URL(), testClientOpts{user: "admin", password: "admin-pw", clean: true,
		filters: []string{tp.Full("reply/#"), tp.Full("events/#")}})
	reader := newTestClient(t, b.URL(), testClientOpts{user: "homeassistant", password: "ha-pw", clean: true,
		filters: []string{"edged/#"}})

	// A command user gets replies; the reader sees the reply but not the
	// command (it carries face images).
	admin.publish(tp.Command(CmdStatus), []byte(`{"id":"a1"}`))
	admin.waitFor(0, 5*time.Second, "reply to admin", onTopic(tp.Reply("a1")))
	reader.waitFor(0, 5*time.Second, "reply seen by reader", onTopic(tp.Reply("a1")))
	for _, m := range reader.all() {
		if strings.Contains(m.topic, "/cmd/") {
			t.Errorf("reader received a command: %s", m.topic)
		}
	}

	// The reader may not send commands or spoof events: the broker drops
	// the connection (MQTT 3.1.1 has no negative PUBACK) and nothing
	// arrives.
	calls := len(svc.Calls())
	for _, topic := range []string{tp.Command(CmdDelete), tp.Full(TopicRecognized), tp.Availability(), tp.Reply("a1")} {
		pc, err := rawConnect(b.URL(), "homeassistant", "ha-pw")
		if err != nil {
			t.Fatal(err)
		}
		tok := pc.Publish(topic, 1, false, `{"id":"evil","person_id":"p1","type":"recognized"}`)
		tok.WaitTimeout(2 * time.Second)
		pc.Disconnect(0)
	}
	time.Sleep(300 * time.Millisecond)
	for _, m := range admin.all() {
		if strings.Contains(string(m.payload), "evil") {
			t.Errorf("forged message delivered on %s: %s", m.topic, m.payload)
		}
	}
	if got := svc.Calls(); len(got) != calls {
		t.Errorf("reader's command reached the service: %v", got[calls:])
	}

	// Authentication.
	for _, tc := range []struct{ user, pass string }{
		{"", ""}, {"homeassistant", "wrong"}, {u, "guess"}, {"nobody", "x"},
	} {
		if pc, err := rawConnect(b.URL(), tc.user, tc.pass); err == nil {
			pc.Disconnect(0)
			t.Errorf("user %q with password %q connected", tc.user, tc.pass)
		}
	}

	// Without users the broker must stay on loopback.
	if _, err := StartBrokerWith(BrokerOptions{Addr: "0.0.0.0:0"}); !errors.Is(err, ErrOptions) {
		t.Errorf("non-loopback broker without users: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second close: %v", err)
	}
}

// TestEmbeddedBrokerAnonymousCannotSpoof: in the default set-up (no users,
// loopback) local clients may send commands but not publish edged's events.
func TestEmbeddedBrokerAnonymousCannotSpoof(t *testing.T) {
	b := startEmbedded(t, BrokerOptions{})
	tp, _ := NewTopics("", "dev1")
	sub := newTestClient(t, b.URL(), testClientOpts{clean: true, filters: []string{tp.Full("#")}})
	pc, err := rawConnect(b.URL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	pc.Publish(tp.Full(TopicRecognized), 1, false, `{"type":"recognized","name":"forged"}`).WaitTimeout(2 * time.Second)
	pc.Disconnect(0)
	pc, err = rawConnect(b.URL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if tok := pc.Publish(tp.Command(CmdStatus), 1, false, `{"id":"ok"}`); !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
		t.Errorf("anonymous local command refused: %v", tok.Error())
	}
	pc.Disconnect(0)
	sub.waitFor(0, 5*time.Second, "command", onTopic(tp.Command(CmdStatus)))
	for _, m := range sub.all() {
		if m.topic == tp.Full(TopicRecognized) {
			t.Errorf("forged event delivered: %s", m.payload)
		}
	}
}

// TestV5ResponseTopic: an MQTT 5 requester (mosquitto_rr) that sets a
// Response Topic and Correlation Data gets the reply there, through the
// embedded broker; the reply also goes to reply/<id> as always.
func TestV5ResponseTopic(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_rr"); err != nil {
		t.Skipf("mosquitto_rr not installed: %v", err)
	}
	b := startEmbedded(t, BrokerOptions{})
	u, p := b.Credentials()
	c := startClient(t, b.URL(), NewMemOutbox(), NewServiceRouter(newFakeService(), Limits{}, nil), func(o *Options) { o.Username, o.Password = u, p })
	waitConnected(t, c)
	tp := c.Topics()
	sub := newTestClient(t, b.URL(), testClientOpts{clean: true, filters: []string{tp.Full("reply/#")}})
	host, port, _ := net.SplitHostPort(b.Addr())
	// -W only bounds a hang: the reply comes in milliseconds.
	out, err := exec.Command("mosquitto_rr", "-h", host, "-p", port, "-q", "1", "-W", "30",
		"-t", tp.Command(CmdStatus), "-e", "clients/me/responses",
		"-D", "publish", "correlation-data", "corr-42",
		"-F", "%t|%D|%p",
		"-m", `{"id":"v5-1"}`).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_rr: %v: %s", err, out)
	}
	parts := strings.SplitN(strings.TrimSpace(string(out)), "|", 3)
	if len(parts) != 3 || parts[0] != "clients/me/responses" || parts[1] != "corr-42" {
		t.Fatalf("response %q: want topic clients/me/responses and correlation corr-42", out)
	}
	if r := parseReply(t, []byte(parts[2])); !*r.OK || r.ID != "v5-1" {
		t.Errorf("reply %s", parts[2])
	}
	sub.waitFor(0, 5*time.Second, "reply on reply/v5-1", onTopic(tp.Reply("v5-1")))
}

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir.
func testPKI(t testing.TB, dir string) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(name, "EC PRIVATE KEY", der)
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edged test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: ips,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", "CERTIFICATE", der)
		writeKey(name+".key", k)
	}
	leaf("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	leaf("client", 3, x509.ExtKeyUsageClientAuth, nil)
}

// TestTLSAndPassword: edged connects to Mosquitto over TLS (CA file,
// client certificate) with a username and password.
func TestTLSAndPassword(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_passwd"); err != nil {
		t.Skipf("mosquitto_passwd not installed: %v", err)
	}
	dir := t.TempDir()
	testPKI(t, dir)
	pw := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pw, "edged", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	tlsPort := freePort(t)
	m := startMosquitto(t, fmt.Sprintf(`allow_anonymous false
password_file %s
listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate true
`, pw, tlsPort, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")))
	tlsURL := fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort)
	withTLS := func(o *Options) {
		o.Broker = tlsURL
		o.CAFile = filepath.Join(dir, "ca.pem")
		o.CertFile = filepath.Join(dir, "client.pem")
		o.KeyFile = filepath.Join(dir, "client.key")
		o.Username, o.Password = "edged", "s3cret"
	}
	outbox := NewMemOutbox()
	c := startClient(t, tlsURL, outbox, NewRouter(Limits{}, nil), withTLS)
	waitConnected(t, c)
	// Observe on the plain listener (same password file).
	sub := newTestClient(t, m.URL(), testClientOpts{user: "edged", password: "s3cret", clean: true, filters: []string{c.Topics().Full("#")}})
	produceRecognized(t, outbox, 1)
	sub.waitFor(0, 5*time.Second, "event over TLS", onTopic(c.Topics().Full(TopicRecognized)))

	// Without the client certificate, or with a wrong password, or with
	// another CA, the broker (or edged) refuses the connection.
	otherCA := t.TempDir()
	testPKI(t, otherCA)
	for name, mod := range map[string]func(*Options){
		"no client cert": func(o *Options) { withTLS(o); o.CertFile, o.KeyFile = "", "" },
		"wrong password": func(o *Options) { withTLS(o); o.Password = "nope" },
		"unknown CA":     func(o *Options) { withTLS(o); o.CAFile = filepath.Join(otherCA, "ca.pem") },
	} {
		o := Options{Device: "bad", ConnectTimeout: 2 * time.Second}
		mod(&o)
		bad, err := New(o, NewMemOutbox(), NewRouter(Limits{}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := bad.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		if err := bad.WaitConnected(ctx); err == nil {
			t.Errorf("%s: connected", name)
		}
		cancel()
		bad.Close()
	}
}

// aclFromDocs returns the Mosquitto ACL example of docs/mqtt.md.
func aclFromDocs(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "docs", "mqtt.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "A Mosquitto example (`acl_file`)")
	if i < 0 {
		t.Fatal("docs/mqtt.md has no Mosquitto ACL example")
	}
	s = s[i:]
	start := strings.Index(s, "```\n") + 4
	end := strings.Index(s[start:], "```")
	return s[start : start+end]
}

// TestDocumentedMosquittoACL runs the ACL file from docs/mqtt.md on a real
// Mosquitto: edged works (events, replies, discovery, availability), Home
// Assistant reads but cannot command, an admin can.
func TestDocumentedMosquittoACL(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_passwd"); err != nil {
		t.Skipf("mosquitto_passwd not installed: %v", err)
	}
	dir := t.TempDir()
	aclPath := filepath.Join(dir, "acl")
	if err := os.WriteFile(aclPath, []byte(aclFromDocs(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "passwd")
	for i, u := range []string{"edged-kitchen-pi", "homeassistant", "edged-admin"} {
		args := []string{"-b", pw, u, u + "-pw"}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
	}
	m := startMosquitto(t, fmt.Sprintf("allow_anonymous false\npassword_file %s\nacl_file %s\n", pw, aclPath))
	outbox := NewMemOutbox()
	svc := newFakeService()
	c := startClient(t, m.URL(), outbox, NewServiceRouter(svc, Limits{}, nil), func(o *Options) {
		o.Device, o.Username, o.Password = "kitchen-pi", "edged-kitchen-pi", "edged-kitchen-pi-pw"
		o.HomeAssistant.Cameras = []string{"front"}
	})
	waitConnected(t, c)
	tp := c.Topics()
	ha := newTestClient(t, m.URL(), testClientOpts{user: "homeassistant", password: "homeassistant-pw", clean: true,
		filters: []string{"edged/#", "homeassistant/#"}})
	admin := newTestClient(t, m.URL(), testClientOpts{user: "edged-admin", password: "edged-admin-pw", clean: true,
		filters: []string{"edged/+/reply/#"}})

	ha.waitFor(0, 5*time.Second, "retained availability", func(m msg) bool { return m.topic == tp.Availability() && string(m.payload) == Online })
	ha.waitFor(0, 5*time.Second, "discovery", onTopic("homeassistant/sensor/edged_kitchen-pi/front_person/config"))
	produceRecognized(t, outbox, 1)
	ha.waitFor(0, 5*time.Second, "event", onTopic(tp.Full(TopicRecognized)))

	// Home Assistant's birth message reaches edged: discovery again.
	from := ha.count()
	ha.publish("homeassistant/status", []byte("online"))
	ha.waitFor(from, 5*time.Second, "discovery after birth", onTopic("homeassistant/event/edged_kitchen-pi/recognized/config"))

	// Home Assistant cannot command (Mosquitto acknowledges and drops).
	ha.publish(tp.Command(CmdDelete), []byte(`{"id":"ha-1","person_id":"p1"}`))
	// The admin can, and gets the reply.
	admin.publish(tp.Command(CmdStatus), []byte(`{"id":"adm-1"}`))
	admin.waitFor(0, 5*time.Second, "admin reply", onTopic(tp.Reply("adm-1")))
	time.Sleep(300 * time.Millisecond)
	if got := svc.Calls(); len(got) != 1 || got[0] != "status:adm-1" {
		t.Errorf("service calls %v, want only the admin's status", got)
	}
	for _, m := range ha.all() {
		if strings.Contains(m.topic, "/cmd/") {
			t.Errorf("home assistant received a command on %s", m.topic)
		}
	}
	// Clean shutdown publishes offline (edged may write availability).
	from = ha.count()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ha.waitFor(from, 5*time.Second, "offline", func(m msg) bool { return m.topic == tp.Availability() && string(m.payload) == Offline })
}
