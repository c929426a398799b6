// Package ulid makes ULIDs: 26 characters of Crockford base32, 48 bits of
// milliseconds then 80 random bits, so they sort by creation time. Ids made
// in the same millisecond by this process still sort in creation order
// (the random part is incremented). The store's ids and the events'
// event_id and boot_id are ULIDs.
package ulid

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// New returns a new ULID.
func New() string { return ids.next(time.Now()) }

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// idSource is the process's generator: one, so ids of every package
// sort in creation order.
type idSource struct {
	mu     sync.Mutex
	lastMs uint64
	rnd    [10]byte
}

var ids idSource

func (s *idSource) next(t time.Time) string {
	ms := uint64(t.UnixMilli())
	s.mu.Lock()
	if ms <= s.lastMs {
		// Same (or earlier, the clock went back) millisecond: keep the last
		// timestamp and increment the random part so the order holds.
		ms = s.lastMs
		for i := len(s.rnd) - 1; i >= 0; i-- {
			s.rnd[i]++
			if s.rnd[i] != 0 {
				break
			}
		}
	} else {
		s.lastMs = ms
		if _, err := rand.Read(s.rnd[:]); err != nil {
			// crypto/rand never fails on Linux; fall back to the clock.
			binary.BigEndian.PutUint64(s.rnd[2:], uint64(t.UnixNano()))
		}
	}
	var b [16]byte
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	copy(b[6:], s.rnd[:])
	s.mu.Unlock()
	return encodeULID(b)
}

// encodeULID writes 128 bits as 26 base32 digits (the first holds 3 bits).
func encodeULID(b [16]byte) string {
	var out [26]byte
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
