package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/edged-dev/edged/face"
)

// Image is a frame's pixels, owned by a native package (a gocv.Mat
// wrapper). The pipeline calls Release exactly once per frame.
type Image interface{ Release() }

// Frame is one image moving through a camera's chain.
type Frame struct {
	Camera    string        // set by the pipeline
	Seq       uint64        // set by the source; the pipeline numbers frames when it is 0
	Time      time.Time     // capture time (wall clock)
	MediaTime time.Duration // position in a recorded file; 0 for live sources
	Image     Image         // may be nil (tests)
	Width     int           // image size in pixels (0 when unknown)
	Height    int
	Faces     []Face // filled by the processors

	emitted time.Time // when the source emitted it (end-to-end latency)
	once    sync.Once
}

// Release frees the image once; later calls do nothing.
func (f *Frame) Release() {
	f.once.Do(func() {
		if f.Image != nil {
			f.Image.Release()
		}
	})
}

// Face is a detected face and what recognition has made of it so far.
type Face struct {
	face.Face
	Track      uint64         // tracker id (0: not tracked)
	Embedding  face.Embedding // set when this face was embedded in this frame
	Identity   string         // name, unknown-N, or "" while the track is undecided
	PersonID   string         // "" unless recognized
	Distance   float64        // of the track's current decision
	Confidence float64        // 0..1, of the track's current decision
	Decided    bool           // the track has a decision (recognized or unknown)
}

// Payload is an event's content: the mqtt package's payload types
// (mqtt.Recognized, mqtt.Unknown, mqtt.Camera, ...) satisfy it. It marshals
// to the JSON published on <prefix>/<device>/<Topic()>.
type Payload interface {
	Topic() string // relative to the device base, e.g. "events/recognized"
	Retained() bool
}

// Event is something to publish: an MQTT payload (recognized, unknown,
// camera up/down, person and camera state) and the camera it is about.
type Event struct {
	Camera  string
	Payload Payload
	// MediaTime is the frame's position in a recorded file (replay).
	MediaTime time.Duration
}

// Accumulator takes events from processors and sources. AddEvent blocks
// while the event queue is full (events are never dropped) and is safe for
// concurrent use.
type Accumulator interface {
	AddEvent(Event)
}

// Source produces a camera's frames. Run calls emit for each frame, in
// order, until ctx is cancelled (return nil or ctx.Err()), the source ends
// (return nil: end of a file), or it fails (return the error). emit takes
// ownership of the frame (its Image included) and never blocks for long on
// a live camera. Run is called once.
type Source interface {
	Run(ctx context.Context, emit func(*Frame)) error
}

// Processor handles a camera's frames one at a time, in order, from one
// goroutine: it may add faces, tracks and decisions to the frame and
// publish events through acc. An error drops the frame (counted and logged);
// a *FatalError stops the camera.
type Processor interface {
	Process(f *Frame, acc Accumulator) error
}

// Flusher is implemented by processors with state to settle when their
// input ends (a tracker ending its tracks). Flush runs after the last frame,
// before the next stage's input is closed.
type Flusher interface {
	Flush(acc Accumulator) error
}

// Ticker is implemented by processors that act on time passing without
// frames (ending tracks of a camera that went quiet). Tick is called about
// once a second between frames, from the processor's goroutine.
type Ticker interface {
	Tick(now time.Time, acc Accumulator) error
}

// Named stages report their name in logs and metrics (default: the Go
// type).
type Named interface{ Name() string }

// FrameOutput receives every frame that went through a camera's processors
// (an annotated-video writer, a display). It must not keep f.Image after
// returning: the pipeline releases it. If it implements io.Closer, Close is
// called when the camera's chain ends.
type FrameOutput interface {
	WriteFrame(f *Frame) error
}

// EventOutput receives the events of every camera, in order per camera, in
// batches. A WriteEvents error is retried with backoff (events are never
// dropped while the pipeline runs). Close is called once, after the last
// batch.
type EventOutput interface {
	WriteEvents(events []Event) error
	Close() error
}
