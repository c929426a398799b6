//go:build !linux

package store

// statFree cannot tell the free space on this platform: the
// Options.MinFreeBytes check is skipped (edged targets Linux devices).
func statFree(string) (uint64, bool, error) { return 0, false, nil }
