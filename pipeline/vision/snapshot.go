package vision

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/pipeline"
)

// ErrNoFrame is returned by Snapshots.Take when the camera delivers no
// frame in time (stopped, ended, or not running).
var ErrNoFrame = errors.New("no frame from the camera")

// Snapshots serves "the latest frame with boxes and names drawn" on
// request, not as a stream: it is a FrameOutput of every camera that costs
// nothing until someone asks (the web page's camera view); then the next
// frame of that camera is copied, annotated and JPEG-encoded for every
// waiting request. Safe for concurrent use.
type Snapshots struct {
	mu      sync.Mutex
	waiting map[string][]chan []byte // camera -> requests for its next frame
}

// NewSnapshots returns an empty set of requests.
func NewSnapshots() *Snapshots { return &Snapshots{waiting: map[string][]chan []byte{}} }

// Output is the FrameOutput to add to camera's chain.
func (s *Snapshots) Output(camera string) pipeline.FrameOutput { return snapshotOutput{s, camera} }

// TakeTimeout bounds Take's wait when ctx has no earlier deadline: a
// running camera delivers a frame well within it; an ended or stopped one
// never will.
const TakeTimeout = 3 * time.Second

// Take returns the next frame of camera as a JPEG with the faces drawn,
// waiting at most until ctx ends or TakeTimeout (ErrNoFrame).
func (s *Snapshots) Take(ctx context.Context, camera string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, TakeTimeout)
	defer cancel()
	ch := make(chan []byte, 1)
	s.mu.Lock()
	s.waiting[camera] = append(s.waiting[camera], ch)
	s.mu.Unlock()
	select {
	case b := <-ch:
		if b == nil {
			return nil, fmt.Errorf("camera %s: the frame could not be encoded", camera)
		}
		return b, nil
	case <-ctx.Done():
		s.mu.Lock()
		ws := s.waiting[camera]
		for i, w := range ws {
			if w == ch {
				s.waiting[camera] = append(ws[:i:i], ws[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		return nil, fmt.Errorf("camera %s: %w", camera, ErrNoFrame)
	}
}

type snapshotOutput struct {
	s      *Snapshots
	camera string
}

// WriteFrame hands a copy of the frame, annotated, to the requests waiting
// for it (the frame itself goes on unchanged).
func (o snapshotOutput) WriteFrame(f *pipeline.Frame) error {
	o.s.mu.Lock()
	ws := o.s.waiting[o.camera]
	delete(o.s.waiting, o.camera)
	o.s.mu.Unlock()
	if len(ws) == 0 {
		return nil
	}
	var jpeg []byte
	if mat, ok := matOf(f); ok {
		cp := mat.Clone()
		drawFaces(&cp, f.Faces)
		if buf, err := gocv.IMEncode(gocv.JPEGFileExt, cp); err == nil {
			jpeg = append([]byte(nil), buf.GetBytes()...)
			buf.Close()
		}
		cp.Close()
	}
	for _, w := range ws {
		w <- jpeg
	}
	return nil
}
