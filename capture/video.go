package capture

import (
	"context"
	"fmt"
	"math"
	"os"
	"time"

	"gocv.io/x/gocv"
)

// VideoSource is a recorded video file, paced (ModeRealtime) or as fast as
// the consumer goes (ModeFast).
type VideoSource struct {
	base
	path     string
	vc       *gocv.VideoCapture
	first    gocv.Mat // decoded by Open to prove the file is a video
	hasFirst bool     // first not yet delivered nor closed
	fps      float64
	count    int // announced frame count, 0 when unknown
}

var _ Source = (*VideoSource)(nil)

// OpenVideo opens a video file (FFmpeg backend) and decodes its first frame:
// a missing file, an empty file, a file that is not a video, or one without
// a decodable frame is an error here.
func OpenVideo(path string, opts Options) (*VideoSource, error) {
	opts.fill()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return openVideo(path, path, opts)
}

func openVideo(url, path string, opts Options) (*VideoSource, error) {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("open %q: %w", path, ErrNotFound)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("open %q: %w: not a regular file", path, ErrNotVideo)
	case st.Size() == 0:
		return nil, fmt.Errorf("open %q: %w: empty file", path, ErrNotVideo)
	}
	vc, err := gocv.OpenVideoCaptureWithAPI(path, gocv.VideoCaptureFFmpeg)
	if err != nil || !vc.IsOpened() {
		if err == nil {
			vc.Close()
		}
		return nil, fmt.Errorf("open %q: %w (FFmpeg cannot open it; truncated or not a video?)", path, ErrNotVideo)
	}
	first := gocv.NewMat()
	if !vc.Read(&first) || first.Empty() {
		first.Close()
		vc.Close()
		return nil, fmt.Errorf("open %q: %w: no decodable frame", path, ErrNotVideo)
	}
	fps := vc.Get(gocv.VideoCaptureFPS)
	if math.IsNaN(fps) || fps <= 0 || fps > 1000 {
		fps = 25
	}
	count := vc.Get(gocv.VideoCaptureFrameCount)
	if math.IsNaN(count) || count < 0 || count > 1e9 {
		count = 0
	}
	s := &VideoSource{
		base: newBase(url, KindVideo, opts, opts.Mode == ModeRealtime),
		path: path, vc: vc, first: first, hasFirst: true, fps: fps, count: int(count),
	}
	return s, nil
}

// FPS is the frame rate the file announces (25 when it does not).
func (s *VideoSource) FPS() float64 { return s.fps }

// FrameCount is the frame count the file announces (0 when unknown).
func (s *VideoSource) FrameCount() int { return s.count }

// Start implements Source.
func (s *VideoSource) Start(ctx context.Context) error { return s.start(ctx, s.loop) }

// Close implements Source.
func (s *VideoSource) Close() error {
	return s.close(func() {
		if s.vc != nil {
			s.vc.Close()
			s.vc = nil
		}
		if s.hasFirst {
			s.first.Close()
			s.hasFirst = false
		}
	})
}

func (s *VideoSource) loop(ctx context.Context) error {
	for {
		err := s.play(ctx)
		if err != nil || !s.opts.Loop || ctx.Err() != nil {
			return err
		}
		s.vc.Close()
		vc, err := gocv.OpenVideoCaptureWithAPI(s.path, gocv.VideoCaptureFFmpeg)
		if err != nil || !vc.IsOpened() {
			return fmt.Errorf("reopen %q: %w", s.path, ErrNotVideo)
		}
		s.vc = vc
	}
}

// play delivers the file once.
func (s *VideoSource) play(ctx context.Context) error {
	start := time.Now()
	n := 0
	var prevMS float64
	for ctx.Err() == nil {
		var m gocv.Mat
		if n == 0 && s.hasFirst {
			m, s.hasFirst = s.first, false
		} else {
			m = gocv.NewMat()
			if !s.vc.Read(&m) || m.Empty() {
				m.Close()
				break
			}
		}
		// POS_MSEC is the container's timestamp; some files report 0: fall
		// back to the frame index.
		mt := time.Duration(float64(n) / s.fps * float64(time.Second))
		if ms := s.vc.Get(gocv.VideoCapturePosMsec); ms > prevMS && !math.IsNaN(ms) {
			mt = time.Duration(ms * float64(time.Millisecond))
			prevMS = ms
		}
		n++
		if s.opts.Mode == ModeRealtime && !sleepCtx(ctx, time.Until(start.Add(mt))) {
			m.Close()
			return nil
		}
		if !s.emit(ctx, m, mt, s.url) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	// FFmpeg's count is an estimate from the container; allow a little slack.
	if s.count > 0 && n < s.count-max(2, s.count/50) {
		err := fmt.Errorf("%q: %w: decoded %d of %d frames", s.path, ErrTruncated, n, s.count)
		s.event(Event{Kind: EventError, Err: err})
		return err
	}
	s.event(Event{Kind: EventEnd})
	return nil
}
