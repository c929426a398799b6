package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// freeSpace returns the bytes an unprivileged user may still write on the
// file system holding path, and false where the platform cannot tell (the
// check is then skipped). A variable so tests can simulate a full disk.
var freeSpace = statFree

// checkSpace returns an ErrDiskFull error when the file system holding dir
// (or, for a directory still to be created, its nearest existing parent)
// has less than need bytes free; callers add the directory. need <= 0 turns the check off. An error
// reading the free space is not a refusal: the write then goes ahead as it
// did before the check existed.
func checkSpace(dir string, need int64) error {
	if need <= 0 {
		return nil
	}
	at := existingAncestor(dir)
	free, ok, err := freeSpace(at)
	if err != nil || !ok || free >= uint64(need) {
		return nil
	}
	return fmt.Errorf("%w: %s free, %s needed; free some space and retry",
		ErrDiskFull, formatBytes(free), formatBytes(uint64(need)))
}

// existingAncestor returns dir, or its nearest parent that exists.
func existingAncestor(dir string) string {
	d := filepath.Clean(dir)
	for {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return d
		}
		d = parent
	}
}

// formatBytes writes n exactly and, from 1 MiB, in MiB too.
func formatBytes(n uint64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%d bytes (%.1f MiB)", n, float64(n)/(1<<20))
}
