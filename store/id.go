package store

import "github.com/edged-dev/edged/internal/ulid"

// NewID returns a new identifier: a ULID (26 characters of Crockford
// base32, 48 bits of milliseconds then 80 random bits), so ids sort by
// creation time. Ids made in the same millisecond by this process still sort
// in creation order.
func NewID() string { return ulid.New() }

// validID reports whether id can be part of a key: non-empty, at most 64
// bytes, no '/' and no control characters.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c == '/' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
