package vision

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTakeWithoutFramesEnds: a camera that delivers no frame (ended,
// stopped, unknown) gives ErrNoFrame within TakeTimeout, and the request
// is forgotten.
func TestTakeWithoutFramesEnds(t *testing.T) {
	s := NewSnapshots()
	start := time.Now()
	_, err := s.Take(context.Background(), "gone")
	if !errors.Is(err, ErrNoFrame) {
		t.Fatalf("err = %v, want ErrNoFrame", err)
	}
	if d := time.Since(start); d > TakeTimeout+time.Second {
		t.Errorf("took %v", d)
	}
	if n := len(s.waiting["gone"]); n != 0 {
		t.Errorf("%d requests still waiting", n)
	}
}
