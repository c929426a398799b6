//go:build linux && cgo

package memtrim

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// residentKB sums the Rss of this process's mappings whose path contains
// substr and that are not writable, from /proc/self/smaps (a measurement
// only: PageOut itself never reads it).
func residentKB(t *testing.T, substr string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	var sum int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") && strings.Contains(fields[0], "-") {
			in = len(fields) >= 6 && strings.Contains(fields[5], substr) && !strings.Contains(fields[1], "w")
			continue
		}
		if in && fields[0] == "Rss:" && len(fields) >= 2 {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			sum += kb
		}
	}
	return sum
}

// The read-only segments of a loaded library (the C library every cgo
// binary loads) are given back, and the process goes on using it: the
// pages come back from the page cache.
func TestPageOutLoadedLibrary(t *testing.T) {
	before := residentKB(t, "libc.so")
	if before == 0 {
		t.Skip("libc.so not mapped with a resident page")
	}
	if _, _, err := PageOut("libc.so"); err != nil {
		t.Fatal(err)
	}
	after := residentKB(t, "libc.so")
	t.Logf("libc read-only mappings resident: %d KiB -> %d KiB", before, after)
	if after >= before {
		t.Errorf("nothing given back: %d KiB -> %d KiB", before, after)
	}
	// New OS threads (pthread_create, in libc) and a collection.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			_ = make([]byte, 1<<20)
		}()
	}
	wg.Wait()
	runtime.GC()
}

// A file that is mapped but not loaded by the dynamic loader is no
// library: PageOut does not touch it, even with the name in its path, and
// its contents (private changes included) stay.
func TestPageOutOnlyLoadedObjects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "memtrim-probe.so")
	data := make([]byte, 4<<20)
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
	m, err := syscall.Mmap(int(f.Fd()), 0, len(data), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	defer syscall.Munmap(m)
	for i := 0; i < len(m); i += 4096 {
		m[i] ^= 0xff // a private change, as relocation makes
	}
	if err := syscall.Mprotect(m, syscall.PROT_READ); err != nil {
		t.Fatal(err)
	}
	before := residentKB(t, "memtrim-probe.so")
	if _, _, err := PageOut("memtrim-probe.so"); err == nil || !strings.Contains(err.Error(), "no loaded object") {
		t.Fatalf("err = %v, want no loaded object", err)
	}
	if after := residentKB(t, "memtrim-probe.so"); after != before {
		t.Errorf("a mapping that is no loaded object changed: %d KiB -> %d KiB", before, after)
	}
	for i := 0; i < len(m); i += 4096 {
		if m[i] != byte(i*7)^0xff {
			t.Fatalf("byte %d lost its private change", i)
		}
	}
}

func TestPageOutNeedsAName(t *testing.T) {
	if _, _, err := PageOut(""); err == nil {
		t.Fatal("PageOut(\"\") advised every loaded object")
	}
}
