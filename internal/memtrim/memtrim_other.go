//go:build !linux || !cgo

package memtrim

// PageOut returns ErrUnsupported: it needs Linux and cgo.
func PageOut(substr string) (before, after int64, err error) { return 0, 0, ErrUnsupported }
