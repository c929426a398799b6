package capture

import (
	"context"
	"time"

	"gocv.io/x/gocv"
)

// Stats is implemented by every source of this package.
type Stats interface {
	Kind() Kind
	// Dropped counts frames replaced by newer ones before the consumer
	// took them (live and realtime sources).
	Dropped() uint64
	// Err is what ended the source (nil for a clean end), once Frames is
	// closed.
	Err() error
}

var (
	_ Stats = (*LiveSource)(nil)
	_ Stats = (*VideoSource)(nil)
	_ Stats = (*ImageSource)(nil)
	_ Stats = (*MockSource)(nil)
)

// MockSource delivers copies of the given frames, FrameInterval apart, then
// closes its channel: a Source for tests of downstream stages (pipeline,
// replay) that need no file or camera.
type MockSource struct {
	base
	mats []gocv.Mat
	// FrameInterval is the pause between frames (0: none).
	FrameInterval time.Duration
}

var _ Source = (*MockSource)(nil)

// NewMockSource clones mats (the caller keeps ownership of its own). With
// Options.Mode ModeRealtime it delivers like a camera (latest frame wins),
// with ModeFast it waits for the consumer.
func NewMockSource(mats []gocv.Mat, opts Options) *MockSource {
	opts.fill()
	s := &MockSource{base: newBase("mock:", KindImages, opts, opts.Mode == ModeRealtime)}
	for _, m := range mats {
		s.mats = append(s.mats, m.Clone())
	}
	return s
}

// Start implements Source.
func (s *MockSource) Start(ctx context.Context) error {
	return s.start(ctx, func(ctx context.Context) error {
		for i, m := range s.mats {
			if i > 0 && !sleepCtx(ctx, s.FrameInterval) {
				return nil
			}
			if !s.emit(ctx, m.Clone(), time.Duration(i)*s.FrameInterval, s.url) {
				return nil
			}
		}
		s.event(Event{Kind: EventEnd})
		return nil
	})
}

// Close implements Source.
func (s *MockSource) Close() error {
	return s.close(func() {
		for _, m := range s.mats {
			m.Close()
		}
		s.mats = nil
	})
}
