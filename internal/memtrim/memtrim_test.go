package memtrim

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A read-only file mapping that was read in is given back; the data is
// still readable afterwards (it comes back from the page cache).
func TestPageOutCleanFileMapping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "memtrim-probe.bin")
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Written just now, its page-cache pages are dirty until written back:
	// only clean pages are given back.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, len(data), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	defer syscall.Munmap(m)
	var sum int
	for i := 0; i < len(m); i += 4096 {
		sum += int(m[i])
	}
	before, after, err := PageOut("memtrim-probe.bin")
	if err == ErrUnsupported {
		t.Skip("kernel without MADV_PAGEOUT (< 5.4)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resident %d KiB -> %d KiB", before>>10, after>>10)
	if before < 4<<20 {
		t.Fatalf("mapping not resident before (%d bytes)", before)
	}
	if after >= before {
		t.Errorf("nothing given back: %d -> %d", before, after)
	}
	var sum2 int
	for i := 0; i < len(m); i += 4096 {
		sum2 += int(m[i])
	}
	if sum != sum2 {
		t.Fatal("contents changed after page-out")
	}
}

func TestEligibleSkipsWritableAndDirty(t *testing.T) {
	for _, tc := range []struct {
		m    mapping
		want bool
	}{
		{mapping{path: "/lib/libtensorflow_cc.so.2", perms: "r-xp"}, true},
		{mapping{path: "/lib/libtensorflow_cc.so.2", perms: "r--p", privateDirty: 4}, false}, // relocated RELRO
		{mapping{path: "/lib/libtensorflow_cc.so.2", perms: "rw-p"}, false},
		{mapping{path: "/lib/libother.so", perms: "r-xp"}, false},
		{mapping{path: "", perms: "r-xp"}, false},
	} {
		if got := eligible(tc.m, "libtensorflow"); got != tc.want {
			t.Errorf("%+v: %v", tc.m, got)
		}
	}
}
