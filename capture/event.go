package capture

import (
	"math/rand/v2"
	"time"
)

// EventKind says what happened to a source.
type EventKind string

// Event kinds.
const (
	EventDown  EventKind = "down"  // a live source lost its input (or could not open it); retrying
	EventUp    EventKind = "up"    // a live source (re)opened and delivers frames again
	EventError EventKind = "error" // a failed (re)connect attempt, or a file error (e.g. truncated)
	EventEnd   EventKind = "end"   // a file source reached its end
)

// Event reports a change of a source's state, for logs and MQTT.
type Event struct {
	Kind     EventKind
	Source   string
	Time     time.Time
	Err      error         // the cause (down, error)
	Attempt  int           // failed attempts in a row so far (down, error)
	Backoff  time.Duration // delay before the next attempt (down, error)
	Downtime time.Duration // how long the source was down (up)
}

// backoff is exponential with jitter: min, 2*min, 4*min ... up to max,
// each randomised by +-jitter.
type backoff struct {
	min, max time.Duration
	jitter   float64
	next     time.Duration
}

func newBackoff(o Options) *backoff {
	return &backoff{min: o.MinBackoff, max: o.MaxBackoff, jitter: o.Jitter, next: o.MinBackoff}
}

// Delay returns the delay before the next attempt and doubles it.
func (b *backoff) Delay() time.Duration {
	d := b.next
	b.next = min(b.next*2, b.max)
	if b.jitter > 0 {
		d = time.Duration(float64(d) * (1 + b.jitter*(2*rand.Float64()-1)))
	}
	return d
}

// Reset goes back to the minimum after a success.
func (b *backoff) Reset() { b.next = b.min }
