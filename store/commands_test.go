package store

import (
	"path/filepath"
	"testing"
	"time"
)

// TestCommandRecords: the first reply of (command, id) is kept, survives a
// restart and is pruned after its window.
func TestCommandRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	st, err := Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-25 * time.Hour)
	if ok, err := st.RememberCommand("enroll", "old", []byte(`{"id":"old"}`), t0); !ok || err != nil {
		t.Fatalf("remember = %v, %v", ok, err)
	}
	if ok, err := st.RememberCommand("enroll", "dup1", []byte(`first`), time.Now()); !ok || err != nil {
		t.Fatalf("remember = %v, %v", ok, err)
	}
	if ok, err := st.RememberCommand("enroll", "dup1", []byte(`second`), time.Now()); ok || err != nil {
		t.Fatalf("second remember = %v, %v; the first must win", ok, err)
	}
	if _, err := st.RememberCommand("en/roll", "x", nil, time.Now()); err == nil {
		t.Fatal("invalid command name accepted")
	}
	st.Close()
	if st, err = Open(Options{Dir: dir, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, found, err := st.CommandReply("enroll", "dup1")
	if err != nil || !found || string(r.Reply) != "first" {
		t.Fatalf("after restart: %q, %v, %v", r.Reply, found, err)
	}
	if _, found, _ := st.CommandReply("delete", "dup1"); found {
		t.Fatal("records are per command")
	}
	if n, err := st.PruneCommands(time.Now().Add(-24 * time.Hour)); n != 1 || err != nil {
		t.Fatalf("PruneCommands = %d, %v", n, err)
	}
	if n, _ := st.CommandCount(); n != 1 {
		t.Fatalf("%d records left", n)
	}
}
