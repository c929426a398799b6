package store

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBackupFile: the backup lands under its name whole (size reported, no
// temporary file left), and a failed one leaves nothing.
func TestBackupFile(t *testing.T) {
	st := newTestStore(t)
	if err := st.Update(func(tx *Tx) error { return tx.PutPerson(&Person{Name: "Alice"}) }); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "edged.bak")
	n, err := st.BackupFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() != n || n == 0 {
		t.Fatalf("backup file of %d bytes, reported %d", info.Size(), n)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left in the directory: %v", entries)
	}
	if _, err := st.BackupFile(filepath.Join(dir, "missing", "x.bak")); err == nil {
		t.Fatal("backup into a missing directory: no error")
	}
}
