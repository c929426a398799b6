// Package memtrim gives back the resident pages of a loaded shared
// library's read-only segments that a process touched only while starting:
// TensorFlow's 630 MB library has ~195 MB paged in by the dynamic linker
// and the static initialisers that register every op and kernel, of which
// inference uses a small part. The pages stay in the page cache and come
// back on demand; only the process's RSS shrinks, which is what a 1 GB
// device (and the systemd memory accounting) sees. Measured with the
// MobileFaceNet embedder (procmem, x86-64, Linux 6.18): RSS 290 MiB after
// start, 95 MiB after PageOut("libtensorflow"), 108 MiB after 200 more
// embeddings (the pages inference needs came back), the same as root and
// as an unprivileged user like the unit's DynamicUser. For that user the
// kernel ignores MADV_PAGEOUT on a file it may not write, so it is
// MADV_DONTNEED that gives the pages back (malloc_trim(0) gave 6 MiB).
//
// The ranges come from the dynamic loader (dl_iterate_phdr), not from a
// copy of /proc/self/smaps read earlier: they are the PT_LOAD segments
// without write permission of a loaded object, and the advice is given
// inside the loader's callback, which holds the lock dlclose needs, so the
// segments cannot be unmapped (and the addresses reused) in between.
// Segments that overlap PT_GNU_RELRO (relocated, so privately modified)
// and objects with text relocations are left alone; only whole pages
// inside a segment's file-backed part are advised, never a page it shares
// with a neighbouring segment. Dropping clean, read-only file pages is
// always safe: the next access reads them back from the page cache.
//
// Linux with cgo; elsewhere PageOut returns ErrUnsupported.
package memtrim

import "errors"

// ErrUnsupported is returned where PageOut cannot work (not Linux, or
// built without cgo).
var ErrUnsupported = errors.New("memtrim: not supported on this platform")
