package store

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestDegradedOpenAndResume: a read-write Open below the reserve used to
// fail (and the daemon exited for good); now the store opens degraded,
// serves reads, refuses every write with ErrDiskFull, reports
// storage_full, and switches to read-write by itself (through Status, as
// the daemon's health check calls it, or through a write) once the space
// is back.
func TestDegradedOpenAndResume(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	fakeFree(t, &free)
	dir := filepath.Join(t.TempDir(), "db")
	st, err := Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	alice := mustPerson(t, st, "Alice")
	if err := st.AppendEvents(OutboxEvent{Topic: "events/a", Payload: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	free.Store(40 << 20) // the 40 MiB-free case, below the 128 MiB default
	st, err = Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatalf("open below the reserve: %v", err)
	}
	defer st.Close()
	status := st.Status()
	if status.Status != StatusStorageFull || !status.ReadOnlyFallback || status.Episodes != 1 || status.Since.IsZero() {
		t.Fatalf("Status = %+v", status)
	}
	if p, err := st.FindPerson("alice"); err != nil || p.ID != alice.ID {
		t.Fatalf("read while degraded: %+v, %v", p, err)
	}
	if n, err := st.OutboxLen(); err != nil || n != 1 {
		t.Fatalf("OutboxLen while degraded = %d, %v", n, err)
	}
	if err := st.AppendEvents(OutboxEvent{Topic: "events/b"}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("write while degraded = %v, want ErrDiskFull", err)
	}
	if _, err := st.RememberCommand("enroll", "r1", []byte("{}"), time.Now()); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("command record while degraded = %v", err)
	}
	if st.Status().RefusedWrites != 2 {
		t.Fatalf("refused writes = %d", st.Status().RefusedWrites)
	}

	// Space is back: Status (at most once a second) switches it.
	free.Store(1 << 30)
	deadline := time.Now().Add(3 * time.Second)
	for st.Status().Degraded() {
		if time.Now().After(deadline) {
			t.Fatalf("still degraded: %+v", st.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := st.AppendEvents(OutboxEvent{Topic: "events/b", Payload: []byte("2")}); err != nil {
		t.Fatalf("write once space is back: %v", err)
	}
	evs, err := st.PendingEvents(0, 0)
	if err != nil || len(evs) != 2 || evs[1].Seq != 2 {
		t.Fatalf("outbox after the switch: %+v, %v", evs, err)
	}
	if s := st.Status(); s.Episodes != 1 || s.ReadOnlyFallback {
		t.Fatalf("Status after = %+v", s)
	}
}

// TestDegradedFreshStore: no database yet and no space to create one: the
// store opens empty (in memory), creates nothing, refuses writes, and
// creates the database on the first write once space is back.
func TestDegradedFreshStore(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 20)
	fakeFree(t, &free)
	dir := filepath.Join(t.TempDir(), "db")
	st, err := Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a degraded open created %s: %v", dir, err)
	}
	if ps, err := st.People(); err != nil || len(ps) != 0 {
		t.Fatalf("People = %v, %v", ps, err)
	}
	if err := st.Update(func(tx *Tx) error { return tx.PutPerson(&Person{Name: "Alice"}) }); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("write = %v", err)
	}
	free.Store(1 << 30)
	p := Person{Name: "Alice"}
	if err := st.Update(func(tx *Tx) error { return tx.PutPerson(&p) }); err != nil {
		t.Fatalf("write once space is back: %v", err)
	}
	if v, err := st.Version(); err != nil || v != SchemaVersion {
		t.Fatalf("schema after the switch = %d, %v", v, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Person(p.ID); err != nil {
		t.Fatalf("the person written after the switch: %v", err)
	}
}

// TestDegradedSwitchWaitsForReaders: a reader (edged people list) holds
// the directory when the space comes back: the switch fails, reads keep
// working, writes say why, and the switch happens once the reader left.
func TestDegradedSwitchWaitsForReaders(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	fakeFree(t, &free)
	old := upgradeRetry
	upgradeRetry = 0
	t.Cleanup(func() { upgradeRetry = old })
	dir := filepath.Join(t.TempDir(), "db")
	st, err := Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	mustPerson(t, st, "Alice")
	st.Close()
	free.Store(1 << 20)
	st, err = Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reader, err := Open(Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatalf("a reader next to a degraded store: %v", err)
	}
	free.Store(1 << 30)
	bob := func() error { return st.Update(func(tx *Tx) error { return tx.PutPerson(&Person{Name: "Bob"}) }) }
	if err := bob(); !errors.Is(err, ErrDiskFull) || !errors.Is(err, errUpgradeLater) {
		t.Fatalf("write while a reader holds the directory = %v", err)
	}
	if _, err := st.FindPerson("alice"); err != nil {
		t.Fatalf("read after a failed switch: %v", err)
	}
	reader.Close()
	if err := bob(); err != nil {
		t.Fatalf("write after the reader left: %v", err)
	}
}
