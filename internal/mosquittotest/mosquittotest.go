// Package mosquittotest runs a real Mosquitto broker for tests: a private
// one on a free loopback port, with persistence in the test's temp dir so
// sessions and queued messages survive a Stop and Start, and its log
// printed when the test fails. Tests skip when Debian's mosquitto package
// (installed by make setup) is missing.
//
//	m := mosquittotest.Run(t, "")
//	client := connect(m.URL())
//	m.Stop() // a broker outage
//	m.Start()
package mosquittotest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bin is where Debian's mosquitto package installs the broker.
const Bin = "/usr/sbin/mosquitto"

// Broker is one test broker. Start and Stop may be called any number of
// times (a restart keeps the port and the persisted sessions).
type Broker struct {
	t    testing.TB
	port int
	dir  string
	conf string
	mu   sync.Mutex
	cmd  *exec.Cmd
}

// Run starts a broker for the test's duration; extra is appended to its
// configuration (a line allow_anonymous in it replaces the default
// "allow_anonymous true"). It skips the test when mosquitto is missing.
func Run(t testing.TB, extra string) *Broker {
	t.Helper()
	if _, err := os.Stat(Bin); err != nil {
		t.Skipf("%s not installed (make setup installs it): %v", Bin, err)
	}
	b := &Broker{t: t, port: FreePort(t), dir: t.TempDir()}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	anon := "allow_anonymous true"
	if strings.Contains(extra, "allow_anonymous") {
		anon = ""
	}
	// As root, mosquitto switches to its own user, which cannot write the
	// test's temp dir (persistence, log); keep root for the test broker.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root"
	}
	// max_queued_messages 0: no cap on what a persistent session queues
	// while its subscriber is away (the outage tests count every event).
	conf := fmt.Sprintf(`listener %d 127.0.0.1
%s
%s
persistence true
persistence_location %s/
max_queued_messages 0
log_dest file %s/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
%s
`, b.port, anon, user, b.dir, b.dir, extra)
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Start()
	t.Cleanup(b.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
			t.Logf("mosquitto on port %d, log:\n%s", b.port, log)
		}
	})
	return b
}

// URL is the broker's address for MQTT clients (tcp://127.0.0.1:PORT).
func (b *Broker) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.port) }

// Addr is host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// Port is the broker's port.
func (b *Broker) Port() int { return b.port }

// Start (re)starts the broker on its port and waits until it accepts
// connections; it does nothing when the broker runs.
func (b *Broker) Start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return
	}
	cmd := exec.Command(Bin, "-c", b.conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("start mosquitto: %v", err)
	}
	b.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
			b.t.Fatalf("mosquitto did not come up on %s: %v\nstderr: %s\nlog: %s", b.Addr(), err, stderr.String(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the broker cleanly (SIGTERM: it saves its persistence file),
// or kills it after 10 s.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
	b.cmd = nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
