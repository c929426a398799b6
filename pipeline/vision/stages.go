// Package vision holds the native (GoCV) stages of the pipeline: a
// capture.Source as a pipeline.Source, detection/alignment as a
// pipeline.Processor, and the annotated-video writer as a
// pipeline.FrameOutput. Package pipeline itself stays pure Go.
package vision

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/capture"
	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/pipeline"
)

// matImage is a captured frame's Mat as a pipeline.Image.
type matImage struct{ f *capture.Frame }

func (m matImage) Release() { m.f.Release() }

// matOf returns the frame's Mat, or false for a frame without one.
func matOf(f *pipeline.Frame) (gocv.Mat, bool) {
	m, ok := f.Image.(matImage)
	if !ok || m.f == nil || m.f.Mat.Ptr() == nil || m.f.Mat.Empty() {
		return gocv.Mat{}, false
	}
	return m.f.Mat, true
}

// CaptureSource runs a capture.Source for the pipeline.
type CaptureSource struct {
	Src capture.Source // started by Run, closed when it ends
}

var _ pipeline.Source = (*CaptureSource)(nil)

// Name implements pipeline.Named.
func (s *CaptureSource) Name() string { return "capture" }

// Run starts the capture and forwards its frames until it ends; it returns
// the capture's error (a truncated file, a live source that gave up).
func (s *CaptureSource) Run(ctx context.Context, emit func(*pipeline.Frame)) error {
	if err := s.Src.Start(ctx); err != nil {
		_ = s.Src.Close()
		return err
	}
	for f := range s.Src.Frames() {
		emit(&pipeline.Frame{
			Seq: f.Seq, Time: f.Time, MediaTime: f.MediaTime,
			Image: matImage{f}, Width: f.Mat.Cols(), Height: f.Mat.Rows(),
		})
	}
	var err error
	if st, ok := s.Src.(interface{ Err() error }); ok {
		err = st.Err()
	}
	if cerr := s.Src.Close(); cerr != nil && !errors.Is(cerr, capture.ErrClosed) && err == nil {
		err = cerr
	}
	return err
}

// DetectStage finds, aligns and scores the faces of each frame. The
// detector is shared by the cameras (it has a pool of networks); the
// per-camera score and size limits are applied here.
type DetectStage struct {
	Detector *detect.Detector // shared; its pool serves the cameras
	MinScore float32          // the camera's detection score threshold
	MinSize  int              // the camera's smallest face side, pixels
}

var _ pipeline.Processor = (*DetectStage)(nil)

// Name implements pipeline.Named.
func (d *DetectStage) Name() string { return "detect" }

// Process implements pipeline.Processor.
func (d *DetectStage) Process(f *pipeline.Frame, _ pipeline.Accumulator) error {
	mat, ok := matOf(f)
	if !ok {
		return errors.New("frame without an image")
	}
	faces, err := d.Detector.Detect(mat)
	if err != nil {
		if errors.Is(err, detect.ErrClosed) {
			return pipeline.Fatal(err)
		}
		return err
	}
	f.Faces = f.Faces[:0]
	for _, fc := range faces {
		side := sqrtInt(fc.Box.Dx() * fc.Box.Dy())
		if fc.Score < d.MinScore || side < d.MinSize {
			continue
		}
		f.Faces = append(f.Faces, pipeline.Face{Face: fc})
	}
	return nil
}

func sqrtInt(n int) int {
	if n <= 0 {
		return 0
	}
	x := n
	for y := (x + 1) / 2; y < x; y = (x + n/x) / 2 {
		x = y
	}
	return x
}

// Annotator draws each frame's faces (box, name or unknown, confidence,
// track) and writes the frames to a video file.
type Annotator struct {
	path string
	// FPS is the frame rate of the file (set it before the first frame).
	FPS float64
	// Video is the file's writer, nil until Open (or the first frame).
	Video  *gocv.VideoWriter
	frames int
	err    error
}

var _ pipeline.FrameOutput = (*Annotator)(nil)

// NewAnnotator checks the path (an existing directory, a .mp4, .mkv or .avi
// file) and returns the writer; fps outside 1..240 means 25.
func NewAnnotator(path string, fps float64) (*Annotator, error) {
	if fps <= 0 || fps > 240 {
		fps = 25
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("annotate: directory %q does not exist", dir)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".mp4", ".avi", ".mkv":
	default:
		return nil, fmt.Errorf("annotate: %q: want a .mp4, .mkv or .avi file", path)
	}
	return &Annotator{path: path, FPS: fps}, nil
}

// Name implements pipeline.Named.
func (a *Annotator) Name() string { return "annotate" }

// fourccs to try per container, best first (H.264 plays in browsers).
func fourccs(path string) []string {
	if strings.EqualFold(filepath.Ext(path), ".avi") {
		return []string{"MJPG"}
	}
	return []string{"avc1", "mp4v", "MJPG"}
}

// Open creates the file for w x h frames with the first encoder that works.
func (a *Annotator) Open(w, h int) error {
	for _, cc := range fourccs(a.path) {
		vw, err := gocv.VideoWriterFile(a.path, cc, a.FPS, w, h, true)
		if err == nil && vw.IsOpened() {
			a.Video = vw
			return nil
		}
		if vw != nil {
			vw.Close()
		}
	}
	return fmt.Errorf("annotate: cannot write %q (no usable video encoder)", a.path)
}

var (
	colKnown   = color.RGBA{40, 200, 40, 0}
	colUnknown = color.RGBA{230, 40, 40, 0}
	colPending = color.RGBA{200, 200, 200, 0}
)

// WriteFrame implements pipeline.FrameOutput.
func (a *Annotator) WriteFrame(f *pipeline.Frame) error {
	if a.err != nil {
		return nil // reported once
	}
	mat, ok := matOf(f)
	if !ok {
		return nil
	}
	if a.Video == nil {
		if err := a.Open(mat.Cols(), mat.Rows()); err != nil {
			a.err = err
			return pipeline.Fatal(err)
		}
	}
	drawFaces(&mat, f.Faces)
	ts := fmt.Sprintf("%s  frame %d", formatMediaTime(f.MediaTime), f.Seq)
	gocv.PutText(&mat, ts, image.Pt(8, mat.Rows()-10), gocv.FontHersheySimplex, 0.5, color.RGBA{255, 255, 255, 0}, 1)
	if err := a.Video.Write(mat); err != nil {
		a.err = err
		return pipeline.Fatal(fmt.Errorf("annotate: %w", err))
	}
	a.frames++
	return nil
}

// drawFaces draws each face's box and label (track, name and confidence;
// unknown-N; "..." while undecided) on mat.
func drawFaces(mat *gocv.Mat, faces []pipeline.Face) {
	for _, fc := range faces {
		col, label := colPending, fmt.Sprintf("#%d ...", fc.Track)
		switch {
		case fc.PersonID != "":
			col, label = colKnown, fmt.Sprintf("#%d %s %.0f%%", fc.Track, fc.Identity, 100*fc.Confidence)
		case fc.Decided:
			id := fc.Identity
			if id == "" {
				id = "unknown"
			}
			col, label = colUnknown, fmt.Sprintf("#%d %s", fc.Track, id)
		}
		gocv.Rectangle(mat, fc.Box, col, 2)
		org := image.Pt(fc.Box.Min.X, max(fc.Box.Min.Y-6, 14))
		gocv.PutText(mat, label, org, gocv.FontHersheySimplex, 0.5, color.RGBA{0, 0, 0, 0}, 3)
		gocv.PutText(mat, label, org, gocv.FontHersheySimplex, 0.5, col, 1)
	}
}

// Close finishes the video file.
func (a *Annotator) Close() error {
	if a.Video != nil {
		err := a.Video.Close()
		a.Video = nil
		if err != nil {
			return err
		}
	}
	return a.err
}

func formatMediaTime(d time.Duration) string {
	d = d.Round(time.Millisecond)
	return fmt.Sprintf("%02d:%02d.%03d", int(d.Minutes()), int(d.Seconds())%60, d.Milliseconds()%1000)
}
