// Package memtrim gives back the resident pages of read-only file
// mappings that a process touched only while starting: TensorFlow's
// 630 MB library has ~190 MB paged in by the dynamic linker and the static
// initialisers that register every op and kernel, of which inference uses
// a small part. The pages stay in the page cache and come back on demand;
// only the process's RSS shrinks, which is what a 1 GB device (and the
// systemd memory accounting) sees.
//
// It uses madvise(MADV_PAGEOUT) (Linux 5.4+), then MADV_DONTNEED, on the
// mappings whose path contains a given substring, are not writable and
// hold no private (modified) pages, so nothing but clean copies of the file
// is ever dropped. Pure Go.
package memtrim

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned where madvise(MADV_PAGEOUT) is not available.
var ErrUnsupported = errors.New("memtrim: MADV_PAGEOUT not supported")

// mapping is one line of /proc/self/smaps with the fields we need.
type mapping struct {
	start, end   uintptr
	perms, path  string
	rssKB        int64
	privateDirty int64
	anonKB       int64
}

func readSmaps(path string) ([]mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mapping
	var cur *mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if rng := fields[0]; strings.Contains(rng, "-") && !strings.HasSuffix(rng, ":") {
			lo, hi, _ := strings.Cut(rng, "-")
			s, err1 := strconv.ParseUint(lo, 16, 64)
			e, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil || len(fields) < 5 {
				cur = nil
				continue
			}
			m := mapping{start: uintptr(s), end: uintptr(e), perms: fields[1]}
			if len(fields) >= 6 {
				m.path = fields[5]
			}
			out = append(out, m)
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil || len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "Rss:":
			cur.rssKB = v
		case "Private_Dirty:":
			cur.privateDirty = v
		case "Anonymous:":
			cur.anonKB = v
		}
	}
	return out, sc.Err()
}

// PageOut asks the kernel to reclaim the resident pages of this process's
// clean, read-only file mappings whose path contains substr. It returns
// the resident size of those mappings before and after, in bytes.
func PageOut(substr string) (before, after int64, err error) {
	ms, err := readSmaps("/proc/self/smaps")
	if err != nil {
		return 0, 0, fmt.Errorf("memtrim: %w", err)
	}
	for _, m := range ms {
		if !eligible(m, substr) {
			continue
		}
		before += m.rssKB << 10
		if m.rssKB == 0 {
			continue
		}
		// PAGEOUT frees the pages (when no other process maps them: it
		// skips shared ones); DONTNEED then drops this process's own
		// mappings of what is left. Both are safe on clean read-only file
		// pages: the next access reads them back from the page cache.
		if err := madvise(m.start, m.end-m.start, unix.MADV_PAGEOUT); err != nil {
			if errors.Is(err, unix.EINVAL) {
				return before, before, ErrUnsupported
			}
			return before, before, fmt.Errorf("memtrim: madvise %s: %w", m.path, err)
		}
		if err := madvise(m.start, m.end-m.start, unix.MADV_DONTNEED); err != nil {
			return before, before, fmt.Errorf("memtrim: madvise %s: %w", m.path, err)
		}
	}
	if ms, err = readSmaps("/proc/self/smaps"); err == nil {
		for _, m := range ms {
			if eligible(m, substr) {
				after += m.rssKB << 10
			}
		}
	}
	return before, after, nil
}

// eligible: a file mapping of the library, read-only (text or rodata), with
// no page the process modified (relocated RELRO pages are dirty: kept).
func eligible(m mapping, substr string) bool {
	return m.path != "" && strings.Contains(m.path, substr) &&
		!strings.Contains(m.perms, "w") && m.privateDirty == 0 && m.anonKB == 0
}

// madvise takes the range as addresses read from /proc/self/smaps (not Go
// memory), so it calls the system call directly rather than through a slice.
func madvise(addr, length uintptr, advice int) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, addr, length, uintptr(advice)); e != 0 {
		return e
	}
	return nil
}
