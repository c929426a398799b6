//go:build linux && cgo

package memtrim

/*
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

struct memtrim_arg {
	const char *substr;
	uintptr_t page;
	size_t advised;   // bytes advised
	int objects;      // objects matched
	int err;          // errno of a failed madvise
};

static int memtrim_textrel(struct dl_phdr_info *info) {
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_DYNAMIC) {
			continue;
		}
		const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
		for (; d->d_tag != DT_NULL; d++) {
			if (d->d_tag == DT_TEXTREL || (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_TEXTREL))) {
				return 1;
			}
		}
	}
	return 0;
}

// memtrim_cb runs under the loader's lock: the object stays mapped while
// its segments are advised.
static int memtrim_cb(struct dl_phdr_info *info, size_t size, void *data) {
	struct memtrim_arg *a = data;
	(void)size;
	if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0' || strstr(info->dlpi_name, a->substr) == NULL) {
		return 0;
	}
	if (memtrim_textrel(info)) {
		return 0;
	}
	uintptr_t rlo = 0, rhi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_GNU_RELRO) {
			rlo = info->dlpi_addr + ph->p_vaddr;
			rhi = rlo + ph->p_memsz;
		}
	}
	a->objects++;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W)) {
			continue;
		}
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		uintptr_t hi = lo + ph->p_filesz;
		if (rhi > rlo && lo < rhi && rlo < hi) {
			continue; // relocated at load time: privately modified pages
		}
		// Whole pages only: a page shared with the next segment may be
		// that (writable) segment's.
		lo = (lo + a->page - 1) & ~(a->page - 1);
		hi &= ~(a->page - 1);
		if (hi <= lo) {
			continue;
		}
		// PAGEOUT frees the page-cache copy too where the kernel lets this
		// process (it owns the file, or could write it; pages no other
		// process maps); EINVAL before Linux 5.4. DONTNEED then drops this
		// process's mappings of what is left.
		if (madvise((void *)lo, hi - lo, MADV_PAGEOUT) != 0 && errno != EINVAL) {
			a->err = errno;
			return 1;
		}
		if (madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0) {
			a->err = errno;
			return 1;
		}
		a->advised += hi - lo;
	}
	return 0;
}

static struct memtrim_arg memtrim_run(const char *substr, long page) {
	struct memtrim_arg a = {substr, (uintptr_t)page, 0, 0, 0};
	dl_iterate_phdr(memtrim_cb, &a);
	return a;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/edged-dev/edged/internal/procmem"
)

// PageOut asks the kernel to drop this process's resident pages of the
// read-only segments of every loaded shared object whose path contains
// substr (not empty). It returns the process's resident file-backed
// memory (RssFile) before and after, in bytes.
func PageOut(substr string) (before, after int64, err error) {
	if substr == "" {
		return 0, 0, errors.New("memtrim: no library named")
	}
	before = rssFile()
	cs := C.CString(substr)
	defer C.free(unsafe.Pointer(cs))
	a := C.memtrim_run(cs, C.long(os.Getpagesize()))
	after = rssFile()
	if a.err != 0 {
		return before, after, fmt.Errorf("memtrim: madvise in %q: %w", substr, syscall.Errno(a.err))
	}
	if a.objects == 0 {
		return before, after, fmt.Errorf("memtrim: no loaded object matches %q", substr)
	}
	return before, after, nil
}

func rssFile() int64 {
	s, err := procmem.Read()
	if err != nil {
		return 0
	}
	return int64(s.FileMiB * (1 << 20))
}
