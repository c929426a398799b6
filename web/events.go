package web

import (
	"context"
	"net/url"
	"sync"
)

// hub fans the backend's events out to the page's event streams and keeps
// the last ones, so a page that opens (or reconnects with Last-Event-ID)
// sees what just happened.
type hub struct {
	mu   sync.Mutex
	seq  uint64
	ring []Event // the last cap(ring) events, oldest first
	subs map[chan Event]struct{}
	done bool
}

func newHub(size int) *hub {
	return &hub{ring: make([]Event, 0, size), subs: map[chan Event]struct{}{}}
}

// run copies the backend's events into the hub until ctx ends or the
// channel closes, then closes every subscriber.
func (h *hub) run(ctx context.Context, b Backend, ch <-chan Event) {
	defer h.close()
	if ch == nil {
		<-ctx.Done()
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			e.Thumb = thumbURL(ctx, b, e)
			h.publish(e)
		}
	}
}

func (h *hub) publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	e.Seq = h.seq
	if len(h.ring) == cap(h.ring) {
		copy(h.ring, h.ring[1:])
		h.ring = h.ring[:len(h.ring)-1]
	}
	h.ring = append(h.ring, e)
	for c := range h.subs {
		select {
		case c <- e:
		default:
			// A stream that cannot keep up loses events rather than
			// slowing the others; its browser reconnects with
			// Last-Event-ID and gets them from the ring.
		}
	}
}

// subscribe returns the events after seq `after` still in the ring and a
// channel of the next ones; cancel releases it. ok is false after close.
func (h *hub) subscribe(after uint64) (backlog []Event, ch chan Event, cancel func(), ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return nil, nil, func() {}, false
	}
	for _, e := range h.ring {
		if e.Seq > after {
			backlog = append(backlog, e)
		}
	}
	ch = make(chan Event, 64)
	h.subs[ch] = struct{}{}
	return backlog, ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}, true
}

// recent returns the events in the ring, oldest first.
func (h *hub) recent() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.ring...)
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done = true
	for c := range h.subs {
		delete(h.subs, c)
		close(c)
	}
}

// thumbURL is the picture of an event's face: the person's, or the
// unknown cluster's newest crop; "" when there is none now (the page then
// shows no picture rather than a broken one).
func thumbURL(ctx context.Context, b Backend, e Event) string {
	switch {
	case e.PersonID != "" && (e.Type == EventRecognized || e.Type == EventEnrolled):
		if img, err := b.SampleThumbnail(ctx, e.PersonID, ""); err == nil && len(img) > 0 {
			return "/api/people/" + url.PathEscape(e.PersonID) + "/thumb"
		}
	case e.UnknownID != "":
		if img, err := b.UnknownThumbnail(ctx, e.UnknownID, -1); err == nil && len(img) > 0 {
			return "/api/unknown/" + url.PathEscape(e.UnknownID) + "/thumb"
		}
	}
	return ""
}
