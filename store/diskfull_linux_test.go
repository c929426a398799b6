//go:build linux

package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs of the given size (e.g. "32m") in a temporary
// directory and unmounts it when the test ends. It skips the test when it
// cannot mount (not root, no mount permission in the container).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs that can fill up")
	}
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): the full-disk test needs mount permission", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a filler file in dir until at most leave bytes are free.
func fill(t *testing.T, dir string, leave uint64) string {
	t.Helper()
	free, _, err := statFree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if free <= leave {
		t.Fatalf("only %d bytes free, wanted to leave %d", free, leave)
	}
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for todo := free - leave; todo > 0; {
		n := min(todo, uint64(len(chunk)))
		if _, err := f.Write(chunk[:n]); err != nil {
			t.Fatalf("write filler: %v", err)
		}
		todo -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkDiskFullErr(t *testing.T, err error, dir string) {
	t.Helper()
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("err = %v, want ErrDiskFull", err)
	}
	msg := err.Error()
	for _, want := range []string{dir, "not enough free disk space", "free", "needed"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message %q does not mention %q", msg, want)
		}
	}
}

// TestDiskFullRefusesWrites fills a real (tmpfs) file system under a live
// store. Without the free-space check Badger dies of SIGBUS writing its
// mmap'd WAL; with it the test survives, the refused writes change nothing,
// everything acknowledged before survives a restart, and writes work again
// once space is freed.
func TestDiskFullRefusesWrites(t *testing.T) {
	mnt := mountTmpfs(t, "32m")
	dir := filepath.Join(mnt, "db")
	const minFree = 8 << 20
	opts := Options{Dir: dir, MinFreeBytes: minFree} // fsync on every commit
	st, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	alice := mustPerson(t, st, "Alice")
	filler := fill(t, mnt, minFree+2<<20) // room for about 2 MiB of writes

	var want [][]byte
	var lastErr error
	for i := 0; i < 5000 && lastErr == nil; i++ {
		payload := make([]byte, 4<<10)
		_, _ = rand.Read(payload)
		copy(payload, fmt.Sprintf("event %d ", i))
		if lastErr = st.AppendEvents(OutboxEvent{Topic: "events/test", Payload: payload}); lastErr == nil {
			want = append(want, payload)
		}
	}
	checkDiskFullErr(t, lastErr, dir)
	if len(want) < 100 {
		t.Fatalf("only %d events of 4 KiB fit in the 2 MiB above the reserve", len(want))
	}
	t.Logf("%d events acknowledged before: %v", len(want), lastErr)

	// Refused writes change nothing and never run their callback.
	called := false
	err = st.Update(func(tx *Tx) error {
		called = true
		return tx.PutPerson(&Person{Name: "Bob"})
	})
	checkDiskFullErr(t, err, dir)
	if called {
		t.Fatal("Update ran its callback on a full disk")
	}
	if err := st.AckEvent(1); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("AckEvent on a full disk = %v, want ErrDiskFull", err)
	}
	if _, err := st.CollectGarbage(t.Context()); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("CollectGarbage on a full disk = %v, want ErrDiskFull", err)
	}
	if n, err := st.OutboxLen(); err != nil || n != len(want) {
		t.Fatalf("OutboxLen = %d, %v; want %d", n, err, len(want))
	}
	if _, err := st.FindPerson("bob"); !errors.Is(err, ErrPersonNotFound) {
		t.Fatalf("the refused person exists: %v", err)
	}

	// Closing on the full disk (it flushes the memtable) must not crash
	// either; the data is readable read-only while the disk is still full.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st2, err := Open(opts); err == nil {
		_ = st2.Close() // the flush may have left enough room: fine
	} else {
		checkDiskFullErr(t, err, dir)
	}
	ro := opts
	ro.ReadOnly = true
	rst, err := Open(ro)
	if err != nil {
		t.Fatalf("read-only open on a full disk: %v", err)
	}
	checkEvents(t, rst, want)
	if err := rst.Close(); err != nil {
		t.Fatal(err)
	}

	// Free the space: writes work again and nothing was lost.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	st, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	last := []byte("after the outage")
	if err := st.AppendEvents(OutboxEvent{Topic: "events/test", Payload: last}); err != nil {
		t.Fatalf("append after freeing space: %v", err)
	}
	if _, err := st.Person(alice.ID); err != nil {
		t.Fatalf("person written before the outage: %v", err)
	}
	checkEvents(t, st, append(want, last))
}

// checkEvents checks the outbox holds exactly want, in order, numbered
// 1, 2, ...
func checkEvents(t *testing.T, st *Store, want [][]byte) {
	t.Helper()
	evs, err := st.PendingEvents(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(want) {
		t.Fatalf("%d events in the outbox, want %d", len(evs), len(want))
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) || !bytes.Equal(ev.Payload, want[i]) {
			t.Fatalf("event %d: seq %d, payload %.20q; want seq %d, %.20q", i, ev.Seq, ev.Payload, i+1, want[i])
		}
	}
}

// TestOpenOnFullDisk: a read-write Open on a file system below the
// reserve opens degraded (it used to fail, and `edged run` exited for
// good): reads work, writes are refused with ErrDiskFull and change
// nothing, a database still to be created is not created, Restore is
// refused; freeing space makes writes work again without a restart.
func TestOpenOnFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, "32m")
	dir := filepath.Join(mnt, "db")
	const minFree = 8 << 20
	opts := Options{Dir: dir, MinFreeBytes: minFree, NoSync: true}
	st, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	mustPerson(t, st, "Alice")
	if err := st.AppendEvents(OutboxEvent{Topic: "events/test", Payload: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if err := st.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	filler := fill(t, mnt, minFree/2)

	st, err = Open(opts)
	if err != nil {
		t.Fatalf("read-write open below the reserve: %v", err)
	}
	if s := st.Status(); s.Status != StatusStorageFull || !s.ReadOnlyFallback {
		t.Fatalf("Status = %+v", s)
	}
	if _, err := st.FindPerson("alice"); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, st, [][]byte{[]byte("one")})
	err = st.AppendEvents(OutboxEvent{Topic: "events/test", Payload: []byte("refused")})
	checkDiskFullErr(t, err, dir)

	fresh := filepath.Join(mnt, "new")
	fst, err := Open(Options{Dir: fresh, MinFreeBytes: minFree})
	if err != nil {
		t.Fatalf("fresh store below the reserve: %v", err)
	}
	err = fst.Update(func(tx *Tx) error { return tx.PutPerson(&Person{Name: "Bob"}) })
	checkDiskFullErr(t, err, fresh)
	if err := fst.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a degraded Open created %s: %v", fresh, err)
	}
	restored := filepath.Join(mnt, "restored")
	err = Restore(bytes.NewReader(backup.Bytes()), Options{Dir: restored, MinFreeBytes: minFree})
	checkDiskFullErr(t, err, restored)
	if entries, _ := os.ReadDir(mnt); len(entries) != 2 { // db and filler
		t.Fatalf("a refused Restore left files behind: %v", entries)
	}

	ro := opts
	ro.ReadOnly = true
	rst, err := Open(ro)
	if err != nil {
		t.Fatalf("read-only open next to a degraded store: %v", err)
	}
	if _, err := rst.FindPerson("alice"); err != nil {
		t.Fatal(err)
	}
	if err := rst.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendEvents(OutboxEvent{Topic: "events/test", Payload: []byte("two")}); err != nil {
		t.Fatalf("write once space is back, same store: %v", err)
	}
	checkEvents(t, st, [][]byte{[]byte("one"), []byte("two")})
	if s := st.Status(); s.Degraded() {
		t.Fatalf("Status after = %+v", s)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenWith40MiBFree is the daemon's case with the default reserve (128
// MiB) and 40 MiB free on a real file system: it opens degraded, lists,
// refuses an enrollment's write with ErrDiskFull, and survives closing and
// reopening there.
func TestOpenWith40MiBFree(t *testing.T) {
	mnt := mountTmpfs(t, "200m")
	dir := filepath.Join(mnt, "db")
	st, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p := mustPerson(t, st, "Alice")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	filler := fill(t, mnt, 40<<20)
	for i := 0; i < 2; i++ {
		st, err = Open(Options{Dir: dir})
		if err != nil {
			t.Fatalf("open with 40 MiB free: %v", err)
		}
		if s := st.Status(); s.Status != StatusStorageFull {
			t.Fatalf("Status = %+v", s)
		}
		if ps, err := st.People(); err != nil || len(ps) != 1 || ps[0].ID != p.ID {
			t.Fatalf("People = %+v, %v", ps, err)
		}
		err = st.Update(func(tx *Tx) error { return tx.PutPerson(&Person{Name: "Bob"}) })
		checkDiskFullErr(t, err, dir)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
}
