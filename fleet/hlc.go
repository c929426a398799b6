package fleet

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HLC is a hybrid logical clock timestamp: physical milliseconds, a
// logical counter that orders events within one millisecond (or while the
// physical clock lags a timestamp seen from another device), and the
// device that issued it, which breaks the remaining ties. Timestamps of
// different devices are therefore never equal, and their order is the
// same everywhere: that is what makes "last writer wins" deterministic.
//
// In JSON it is the string "<wall ms>.<logical>.<device>", e.g.
// "1718000000123.0.front-door".
type HLC struct {
	Wall    int64  // Unix milliseconds
	Logical uint32 // counter within Wall
	Device  string // issuing device
}

// Compare orders timestamps: by Wall, then Logical, then Device. It returns
// -1, 0 or +1.
func (h HLC) Compare(o HLC) int {
	switch {
	case h.Wall < o.Wall:
		return -1
	case h.Wall > o.Wall:
		return 1
	case h.Logical < o.Logical:
		return -1
	case h.Logical > o.Logical:
		return 1
	}
	return strings.Compare(h.Device, o.Device)
}

// After reports whether h is later than o.
func (h HLC) After(o HLC) bool { return h.Compare(o) > 0 }

// IsZero reports whether h is the zero timestamp (before everything).
func (h HLC) IsZero() bool { return h.Wall == 0 && h.Logical == 0 && h.Device == "" }

// Time is the physical part as a time.
func (h HLC) Time() time.Time { return time.UnixMilli(h.Wall).UTC() }

// String is the text form, "<wall ms>.<logical>.<device>".
func (h HLC) String() string {
	return strconv.FormatInt(h.Wall, 10) + "." + strconv.FormatUint(uint64(h.Logical), 10) + "." + h.Device
}

// MarshalText implements encoding.TextMarshaler.
func (h HLC) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *HLC) UnmarshalText(b []byte) error {
	v, err := ParseHLC(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHLC reads the text form.
func ParseHLC(s string) (HLC, error) {
	w, rest, ok1 := strings.Cut(s, ".")
	l, dev, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return HLC{}, fmt.Errorf("%w: hlc %q: want <wall>.<logical>.<device>", ErrInvalid, s)
	}
	wall, err := strconv.ParseInt(w, 10, 64)
	if err != nil || wall < 0 {
		return HLC{}, fmt.Errorf("%w: hlc %q: bad wall time", ErrInvalid, s)
	}
	logical, err := strconv.ParseUint(l, 10, 32)
	if err != nil {
		return HLC{}, fmt.Errorf("%w: hlc %q: bad counter", ErrInvalid, s)
	}
	if !validSegment(dev) {
		return HLC{}, fmt.Errorf("%w: hlc %q: bad device", ErrInvalid, s)
	}
	return HLC{Wall: wall, Logical: uint32(logical), Device: dev}, nil
}

// maxHLC returns the later of a and b.
func maxHLC(a, b HLC) HLC {
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

// Clock issues HLC timestamps for one device. It never goes backwards:
// not when the system clock does (NTP steps it back, a Pi without a
// real-time clock boots in the past), not across restarts (Restore the
// last timestamp persisted), and not after seeing a later timestamp from
// another device (Observe). Safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	device  string
	last    HLC
	now     func() time.Time
	maxSkew time.Duration
}

// NewClock returns a clock for device. now is the physical clock (nil:
// time.Now); maxSkew bounds how far ahead of it a timestamp from another
// device may be (Observe refuses it beyond: one device with a clock years
// ahead must not drag every later write of the fleet behind it).
func NewClock(device string, now func() time.Time, maxSkew time.Duration) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{device: device, now: now, maxSkew: maxSkew, last: HLC{Device: device}}
}

// Now issues a new timestamp, later than every one issued or observed.
func (c *Clock) Now() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt := c.now().UnixMilli()
	if pt > c.last.Wall {
		c.last = HLC{Wall: pt, Device: c.device}
	} else {
		c.last = HLC{Wall: c.last.Wall, Logical: c.last.Logical + 1, Device: c.device}
	}
	return c.last
}

// Observe moves the clock past a timestamp seen in another device's
// record. A timestamp more than maxSkew ahead of the physical clock is
// refused with ErrClockSkew and leaves the clock alone.
func (c *Clock) Observe(h HLC) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.maxSkew > 0 && h.Wall > c.now().UnixMilli()+c.maxSkew.Milliseconds() {
		return fmt.Errorf("%w: %s is %s ahead of this device's clock", ErrClockSkew, h,
			time.Duration(h.Wall-c.now().UnixMilli())*time.Millisecond)
	}
	if h.Wall > c.last.Wall || (h.Wall == c.last.Wall && h.Logical > c.last.Logical) {
		c.last = HLC{Wall: h.Wall, Logical: h.Logical, Device: c.device}
	}
	return nil
}

// Check is Observe's skew test alone: it refuses a timestamp too far ahead
// without moving the clock.
func (c *Clock) Check(h HLC) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.maxSkew > 0 && h.Wall > c.now().UnixMilli()+c.maxSkew.Milliseconds() {
		return fmt.Errorf("%w: %s is %s ahead of this device's clock", ErrClockSkew, h,
			time.Duration(h.Wall-c.now().UnixMilli())*time.Millisecond)
	}
	return nil
}

// Restore moves the clock past a timestamp persisted by an earlier run,
// so that it stays monotonic across restarts even when the system clock
// went back in between.
func (c *Clock) Restore(h HLC) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.Wall > c.last.Wall || (h.Wall == c.last.Wall && h.Logical > c.last.Logical) {
		c.last = HLC{Wall: h.Wall, Logical: h.Logical, Device: c.device}
	}
}

// Last returns the latest timestamp issued or observed (what to persist).
func (c *Clock) Last() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
