package service

import (
	"context"
	"fmt"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/store"
)

// collector gathers the next good faces of one camera for an enrollment.
type collector struct {
	camera  string
	want    int
	minQ    float32
	byTrack map[uint64][]enroll.Embedding
	order   []uint64
	full    chan struct{} // closed when one track has want faces
	closed  bool
}

// FaceTap is the pipeline.RecognizerOptions.Tap hook: it returns a tap
// while an enroll from that camera is collecting faces, else nil (so the
// recognizer embeds only what its track policy needs).
func (s *Service) FaceTap(camera string) pipeline.FaceTap {
	s.mu.Lock()
	c := s.collect
	s.mu.Unlock()
	if c == nil || c.camera != camera {
		return nil
	}
	return s.tapFace
}

func (s *Service) tapFace(camera string, track uint64, f face.Face, raw face.Embedding) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.collect
	if c == nil || c.camera != camera || c.closed || f.Quality.Score < c.minQ {
		return
	}
	if _, ok := c.byTrack[track]; !ok {
		c.order = append(c.order, track)
	}
	c.byTrack[track] = append(c.byTrack[track], enroll.Embedding{
		Embedding: append([]float32(nil), raw...), Quality: f.Quality.Score,
		Source: store.SourceTrack, Ref: fmt.Sprintf("%s/%d", camera, track),
	})
	if len(c.byTrack[track]) >= c.want {
		c.closed = true
		close(c.full)
	}
}

// collectFaces waits for req.NextFaces good faces of one person (one track)
// on req.Camera, at most the request's timeout. When time runs out it
// returns the faces of the track with the most of them, or a timeout error
// when no good face was seen at all.
func (s *Service) collectFaces(ctx context.Context, req mqtt.EnrollRequest) ([]enroll.Embedding, error) {
	cams := s.cameras()
	if cams == nil || !s.hasCamera(cams, req.Camera) {
		return nil, mqtt.Errorf(mqtt.CodeUnknownCamera, "camera %q is not running", req.Camera)
	}
	c := &collector{camera: req.Camera, want: req.NextFaces, minQ: s.o.MinEnrollQuality,
		byTrack: map[uint64][]enroll.Embedding{}, full: make(chan struct{})}
	s.mu.Lock()
	if s.collect != nil {
		s.mu.Unlock()
		return nil, mqtt.Errorf(mqtt.CodeConflict, "an enrollment from camera %s is already collecting faces", s.collect.camera)
	}
	s.collect = c
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.collect = nil
		s.mu.Unlock()
	}()
	timeout := s.o.CameraTimeout
	if req.TimeoutS > 0 {
		timeout = time.Duration(req.TimeoutS * float64(time.Second))
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.full:
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var best []enroll.Embedding
	for _, tr := range c.order {
		if fs := c.byTrack[tr]; len(fs) > len(best) {
			best = fs
		}
	}
	if len(best) == 0 {
		return nil, mqtt.Errorf(mqtt.CodeTimeout, "no good face on camera %s within %v", req.Camera, timeout.Round(time.Second))
	}
	if len(best) > req.NextFaces {
		best = best[:req.NextFaces]
	}
	return best, nil
}
