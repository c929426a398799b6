//go:build linux

package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repairChildEnv makes the test binary a child that commits people and
// outbox events in a loop (TestRepairChild) until it is killed.
const repairChildEnv = "EDGED_STORE_REPAIR_DIR"

// TestRepairChild is the child process; it does nothing in a normal run.
func TestRepairChild(t *testing.T) {
	dir := os.Getenv(repairChildEnv)
	if dir == "" {
		t.Skip("child process of TestReadOnlyOpenAfterKill")
	}
	st, err := Open(Options{Dir: dir}) // fsync on every commit
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		p := Person{Name: fmt.Sprintf("p-%d-%d", os.Getpid(), i)}
		err := st.Update(func(tx *Tx) error {
			if err := tx.PutPerson(&p); err != nil {
				return err
			}
			return tx.AppendEvents(OutboxEvent{Topic: "events/enrolled", Payload: []byte(p.ID)})
		})
		if err != nil {
			fmt.Fprintln(out, "error", err)
			out.Flush()
			os.Exit(1)
		}
		fmt.Fprintln(out, "committed", p.ID)
		out.Flush()
	}
}

// killChildAfter runs the child on dir and kills it with SIGKILL once it
// reported n commits; it returns every commit it reported.
func killChildAfter(t *testing.T, dir string, n int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRepairChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), repairChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	sc := bufio.NewScanner(stdout)
	for len(ids) < n && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || f[0] != "committed" {
			t.Fatalf("child: %s", sc.Text())
		}
		ids = append(ids, f[1])
	}
	time.Sleep(time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "committed" {
			ids = append(ids, f[1])
		}
	}
	_ = cmd.Wait()
	return ids
}

// TestReadOnlyOpenAfterKill: after a kill -9 in the middle of commits, a
// read-only open (edged people list, backup, every read-only command)
// used to fail with Badger's "Log truncate required"; now it repairs the
// store (no other process holds it), says what it did, and every
// committed person and event is there. With another process holding the
// directory, it fails with a clear ErrLocked instead.
func TestReadOnlyOpenAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: spawns child processes")
	}
	dir := filepath.Join(t.TempDir(), "db")
	var committed []string
	for run := 0; run < 3; run++ {
		committed = append(committed, killChildAfter(t, dir, 20+run*7)...)

		if run == 0 {
			// Another process holds the directory (a shared lock, as a
			// reader would): no repair, a clear error.
			unlock := holdSharedLock(t, dir)
			_, err := Open(Options{Dir: dir, ReadOnly: true})
			unlock()
			if !errors.Is(err, ErrLocked) || !errors.Is(err, ErrNeedsRepair) || !strings.Contains(err.Error(), "another process") {
				t.Fatalf("read-only open of a crashed store held by another process = %v", err)
			}
		}

		st, err := Open(Options{Dir: dir, ReadOnly: true})
		if err != nil {
			t.Fatalf("run %d: read-only open after kill -9: %v", run, err)
		}
		rep := st.Repaired()
		if rep == nil || len(rep.Replayed) == 0 {
			t.Fatalf("run %d: no repair reported: %+v", run, rep)
		}
		t.Logf("run %d: %s", run, rep)
		people := map[string]bool{}
		ps, err := st.People()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			people[p.ID] = true
		}
		for _, id := range committed {
			if !people[id] {
				t.Fatalf("run %d: committed person %s lost", run, id)
			}
		}
		if n, err := st.OutboxLen(); err != nil || n != len(ps) {
			t.Fatalf("run %d: %d events for %d people (%v)", run, n, len(ps), err)
		}
		// A second read-only open finds nothing to repair.
		st2, err := Open(Options{Dir: dir, ReadOnly: true})
		if err != nil || st2.Repaired() != nil {
			t.Fatalf("second read-only open: %v, %+v", err, st2)
		}
		st2.Close()
		st.Close()
	}
}

// holdSharedLock takes a shared flock on dir, as a read-only Badger does,
// and returns its release.
func holdSharedLock(t *testing.T, dir string) func() {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}
