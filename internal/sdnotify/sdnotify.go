// Package sdnotify speaks systemd's notify protocol (sd_notify(3)): READY,
// STOPPING, WATCHDOG and STATUS datagrams on $NOTIFY_SOCKET. Every function
// is a no-op when NOTIFY_SOCKET is unset (not started by systemd, or not a
// Type=notify unit), so callers never need to check.
package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Notify sends state (e.g. "READY=1") to the socket named by NOTIFY_SOCKET.
// It returns (false, nil) when the variable is unset.
func Notify(state string) (bool, error) {
	return notifyTo(os.Getenv("NOTIFY_SOCKET"), state)
}

func notifyTo(socket, state string) (bool, error) {
	if socket == "" {
		return false, nil
	}
	if socket[0] == '@' { // abstract namespace socket
		socket = "\x00" + socket[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

// Ready tells systemd that start-up is complete.
func Ready() error { _, err := Notify("READY=1"); return err }

// Stopping tells systemd that shutdown has begun.
func Stopping() error { _, err := Notify("STOPPING=1"); return err }

// Reloading tells systemd a reload (SIGHUP) has begun; send Ready when done.
func Reloading() error {
	_, err := Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10))
	return err
}

// Status sets the one-line status `systemctl status` shows.
func Status(s string) error { _, err := Notify("STATUS=" + s); return err }

// WatchdogInterval returns the watchdog period systemd asks for
// (WatchdogSec=, via WATCHDOG_USEC and WATCHDOG_PID), or 0 when there is no
// watchdog for this process.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}

// ErrUnhealthy may be returned by a health check to skip a watchdog ping.
var ErrUnhealthy = errors.New("unhealthy")

// Watchdog pings WATCHDOG=1 at half the interval systemd asks for, until ctx
// ends. healthy (may be nil) is asked before each ping; when it returns an
// error the ping is skipped, so systemd restarts a daemon that is stuck
// rather than merely alive. It returns at once without a watchdog.
func Watchdog(ctx context.Context, healthy func() error) {
	iv := WatchdogInterval()
	if iv <= 0 || os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	t := time.NewTicker(iv / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if healthy != nil && healthy() != nil {
				continue
			}
			_, _ = Notify("WATCHDOG=1")
		}
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}
