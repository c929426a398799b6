package sdnotify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket the way systemd does and points
// NOTIFY_SOCKET at it.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Skipf("unixgram sockets unavailable here: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 1024)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func TestNoSocketIsNoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	sent, err := Notify("READY=1")
	if sent || err != nil {
		t.Fatalf("sent=%v err=%v", sent, err)
	}
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Watchdog(ctx, nil) // returns at once
}

func TestReadyStoppingStatus(t *testing.T) {
	c := listen(t)
	for _, tc := range []struct {
		fn   func() error
		want string
	}{
		{Ready, "READY=1"},
		{func() error { return Status("2 cameras") }, "STATUS=2 cameras"},
		{Stopping, "STOPPING=1"},
		{Reloading, "RELOADING=1\nMONOTONIC_USEC="},
	} {
		if err := tc.fn(); err != nil {
			t.Fatal(err)
		}
		if got := read(t, c); !strings.HasPrefix(got, tc.want) {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestWatchdogPingsAtHalfInterval(t *testing.T) {
	c := listen(t)
	t.Setenv("WATCHDOG_USEC", "100000") // 100 ms -> a ping every 50 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if got := WatchdogInterval(); got != 100*time.Millisecond {
		t.Fatalf("interval %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Watchdog(ctx, nil); close(done) }()
	start := time.Now()
	for i := 0; i < 3; i++ {
		if got := read(t, c); got != "WATCHDOG=1" {
			t.Fatalf("got %q", got)
		}
	}
	if el := time.Since(start); el < 120*time.Millisecond || el > 1500*time.Millisecond {
		t.Errorf("3 pings took %v, want about 150ms", el)
	}
	cancel()
	<-done
}

func TestWatchdogSkipsWhenUnhealthyAndOtherPID(t *testing.T) {
	c := listen(t)
	t.Setenv("WATCHDOG_USEC", "40000")
	t.Setenv("WATCHDOG_PID", "1")
	if WatchdogInterval() != 0 {
		t.Fatal("watchdog meant for another pid was accepted")
	}
	t.Setenv("WATCHDOG_PID", "")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	Watchdog(ctx, func() error { return ErrUnhealthy })
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Fatalf("pinged while unhealthy (%d bytes)", n)
	}
}
