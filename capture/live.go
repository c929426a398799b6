package capture

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gocv.io/x/gocv"
)

// LiveSource is a V4L2 device, a network stream or a GStreamer pipeline: it
// always delivers the latest frame and reconnects after errors.
type LiveSource struct {
	base
	open func() (*gocv.VideoCapture, error)
}

var _ Source = (*LiveSource)(nil)

func newLive(url string, kind Kind, target string, opts Options) *LiveSource {
	api := gocv.VideoCaptureFFmpeg
	if kind == KindGStreamer {
		api = gocv.VideoCaptureGstreamer
	}
	return &LiveSource{
		base: newBase(url, kind, opts, true),
		open: func() (*gocv.VideoCapture, error) { return gocv.OpenVideoCaptureWithAPI(target, api) },
	}
}

func newDevice(url string, idx int, opts Options) *LiveSource {
	return &LiveSource{
		base: newBase(url, KindDevice, opts, true),
		open: func() (*gocv.VideoCapture, error) {
			vc, err := gocv.VideoCaptureDeviceWithAPI(idx, gocv.VideoCaptureV4L2)
			if err != nil {
				return nil, err
			}
			if opts.Width > 0 && opts.Height > 0 {
				vc.Set(gocv.VideoCaptureFrameWidth, float64(opts.Width))
				vc.Set(gocv.VideoCaptureFrameHeight, float64(opts.Height))
			}
			if opts.FPS > 0 {
				vc.Set(gocv.VideoCaptureFPS, opts.FPS)
			}
			// One buffered frame in the driver: we want the latest, not a queue.
			vc.Set(gocv.VideoCaptureBufferSize, 1)
			return vc, nil
		},
	}
}

// Start implements Source. Connection failures are not errors here: they are
// retried and reported through Options.OnEvent.
func (s *LiveSource) Start(ctx context.Context) error { return s.start(ctx, s.loop) }

// Close implements Source. It waits for a read in progress, which for a hung
// network stream can take FFmpeg's read timeout (30 s by default).
func (s *LiveSource) Close() error { return s.close(nil) }

var (
	errEnded   = errors.New("stream ended or read failed")
	errNoFrame = errors.New("opened but delivered no frame")
)

func (s *LiveSource) loop(ctx context.Context) error {
	bo := newBackoff(s.opts)
	var (
		down      bool
		downSince time.Time
		attempts  int
	)
	fail := func(err error) error {
		attempts++
		d := bo.Delay()
		e := Event{Kind: EventError, Err: err, Attempt: attempts, Backoff: d}
		if !down {
			down, downSince, e.Kind = true, time.Now(), EventDown
		}
		s.event(e)
		if s.opts.MaxRetries > 0 && attempts > s.opts.MaxRetries {
			return fmt.Errorf("camera %s: gave up after %d attempts: %w", s.url, attempts, err)
		}
		sleepCtx(ctx, d)
		return nil
	}
	for ctx.Err() == nil {
		vc, err := s.open()
		if err == nil && !vc.IsOpened() {
			vc.Close()
			err = errors.New("could not open")
		}
		if err != nil {
			if err := fail(err); err != nil {
				return err
			}
			continue
		}
		n := 0
		for ctx.Err() == nil {
			m := gocv.NewMat()
			if !vc.Read(&m) || m.Empty() {
				m.Close()
				break
			}
			if n == 0 {
				e := Event{Kind: EventUp}
				if down {
					e.Downtime = time.Since(downSince)
				}
				s.event(e)
				down, attempts = false, 0
				bo.Reset()
			}
			n++
			if !s.emit(ctx, m, 0, s.url) {
				break
			}
		}
		vc.Close()
		if ctx.Err() != nil {
			return nil
		}
		cause := errEnded
		if n == 0 {
			cause = errNoFrame
		}
		if err := fail(cause); err != nil {
			return err
		}
	}
	return nil
}
