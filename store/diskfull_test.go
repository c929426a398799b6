package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeFree replaces the free-space probe for the test: it reports *free
// bytes for every path.
func fakeFree(t *testing.T, free *atomic.Uint64) {
	t.Helper()
	old := freeSpace
	freeSpace = func(string) (uint64, bool, error) { return free.Load(), true, nil }
	t.Cleanup(func() { freeSpace = old })
}

func TestMinFreeBytesOption(t *testing.T) {
	if got := DefaultOptions("x").MinFreeBytes; got != 128<<20 {
		t.Fatalf("default MinFreeBytes = %d", got)
	}
	var free atomic.Uint64
	free.Store(1 << 20)
	fakeFree(t, &free)
	for _, tc := range []struct {
		min     int64
		refused bool
	}{
		{0, true},          // the 128 MiB default
		{1 << 20, false},   // exactly enough
		{1<<20 + 1, true},  // one byte short
		{-1, false},        // check off
		{512 << 10, false}, // a smaller reserve
		{64 << 20, true},   // a larger one
		{DefaultMinFreeBytes, true},
	} {
		// Below the reserve the store opens degraded: it reads, refuses
		// writes with ErrDiskFull and says so in Status.
		dir := filepath.Join(t.TempDir(), "db")
		st, err := Open(Options{Dir: dir, MinFreeBytes: tc.min, NoSync: true})
		if err != nil {
			t.Fatalf("MinFreeBytes %d with 1 MiB free: Open = %v", tc.min, err)
		}
		status := st.Status()
		werr := st.AppendEvents(OutboxEvent{Topic: "events/a"})
		if tc.refused != errors.Is(werr, ErrDiskFull) || (!tc.refused && werr != nil) {
			t.Fatalf("MinFreeBytes %d with 1 MiB free: write = %v", tc.min, werr)
		}
		if tc.refused != status.Degraded() || (tc.refused && (status.Status != StatusStorageFull || !status.ReadOnlyFallback || !errors.Is(status.Err, ErrDiskFull))) {
			t.Fatalf("MinFreeBytes %d with 1 MiB free: Status = %+v", tc.min, status)
		}
		_ = st.Close()
	}
}

// TestDiskFullSimulated covers every write path with a simulated free-space
// figure (no root needed).
func TestDiskFullSimulated(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	fakeFree(t, &free)
	dir := filepath.Join(t.TempDir(), "db")
	st, err := Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := mustPerson(t, st, "Alice")
	if err := st.AppendEvents(OutboxEvent{Topic: "events/a"}); err != nil {
		t.Fatal(err)
	}

	free.Store(DefaultMinFreeBytes - 1)
	writes := map[string]func() error{
		"Update": func() error {
			return st.Update(func(tx *Tx) error { t.Error("Update ran its callback"); return nil })
		},
		"AppendEvents": func() error { return st.AppendEvents(OutboxEvent{Topic: "events/b"}) },
		"AckEvent":     func() error { return st.AckEvent(1) },
		"RenamePerson": func() error { _, err := st.RenamePerson(p.ID, "Bob"); return err },
		"DeletePerson": func() error { return st.DeletePerson(p.ID) },
		"CollectGarbage": func() error {
			_, err := st.CollectGarbage(t.Context())
			return err
		},
	}
	for name, write := range writes {
		err := write()
		if !errors.Is(err, ErrDiskFull) {
			t.Fatalf("%s on a full disk = %v, want ErrDiskFull", name, err)
		}
		if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "134217727 bytes (128.0 MiB) free, 134217728 bytes (128.0 MiB) needed") {
			t.Fatalf("%s: unclear message %q", name, msg)
		}
	}
	if got, err := st.Person(p.ID); err != nil || got.Name != "Alice" {
		t.Fatalf("person changed by refused writes: %+v, %v", got, err)
	}
	if n, err := st.OutboxLen(); err != nil || n != 1 {
		t.Fatalf("OutboxLen = %d, %v after refused writes", n, err)
	}

	free.Store(DefaultMinFreeBytes)
	for _, name := range []string{"AppendEvents", "RenamePerson", "CollectGarbage"} {
		if err := writes[name](); err != nil {
			t.Fatalf("%s once space is back: %v", name, err)
		}
	}
	if n, err := st.OutboxLen(); err != nil || n != 2 {
		t.Fatalf("OutboxLen = %d, %v", n, err)
	}
}

// TestRestoreStopsWhenDiskFills: the free space runs out while a backup
// loads; Restore stops with ErrDiskFull and leaves nothing behind.
func TestRestoreStopsWhenDiskFills(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	fakeFree(t, &free)
	st, err := Open(Options{Dir: filepath.Join(t.TempDir(), "db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	payload := bytes.Repeat([]byte("x"), 32<<10)
	for i := 0; i < 20; i++ { // several 64 KiB backup chunks
		payload[0] = byte(i)
		if err := st.AppendEvents(OutboxEvent{Topic: "events/a", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	var backup bytes.Buffer
	if err := st.Backup(&backup); err != nil {
		t.Fatal(err)
	}

	parent := t.TempDir()
	target := filepath.Join(parent, "restored")
	var chunks atomic.Int32
	old := freeSpace
	freeSpace = func(path string) (uint64, bool, error) {
		if chunks.Add(1) > 3 { // Restore's own check and two chunks pass
			return 1 << 20, true, nil
		}
		return old(path)
	}
	err = Restore(bytes.NewReader(backup.Bytes()), Options{Dir: target})
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), target) {
		t.Fatalf("Restore while the disk fills = %v, want ErrDiskFull naming %s", err, target)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Fatalf("a failed restore left %v behind", entries)
	}

	free.Store(1 << 30)
	freeSpace = old
	if err := Restore(bytes.NewReader(backup.Bytes()), Options{Dir: target, NoSync: true}); err != nil {
		t.Fatalf("Restore with room: %v", err)
	}
}
