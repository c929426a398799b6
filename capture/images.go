package capture

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/internal/imagefile"
)

// ImageSource delivers still images (JPEG, PNG) in name order.
type ImageSource struct {
	base
	files  []string
	failed int
}

var _ Source = (*ImageSource)(nil)

// NewImageSource returns a source over the given image files (sorted by
// name). In ModeRealtime they are paced at Options.FPS (default 1 per
// second).
func NewImageSource(files []string, opts Options) (*ImageSource, error) {
	opts.fill()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no image files", ErrNotFound)
	}
	return newImages(files[0], files, opts), nil
}

func newImages(url string, files []string, opts Options) *ImageSource {
	files = append([]string(nil), files...)
	sort.Strings(files)
	return &ImageSource{base: newBase(url, KindImages, opts, opts.Mode == ModeRealtime), files: files}
}

// Start implements Source.
func (s *ImageSource) Start(ctx context.Context) error { return s.start(ctx, s.loop) }

// Close implements Source.
func (s *ImageSource) Close() error { return s.close(nil) }

// Files are the images the source reads, in order.
func (s *ImageSource) Files() []string { return append([]string(nil), s.files...) }

// ReadImage reads and decodes a JPEG or PNG file into a BGR Mat, checking
// its header in Go first.
func ReadImage(path string) (gocv.Mat, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("read %q: %w", path, err)
	}
	if _, err := imagefile.Check(data); err != nil {
		return gocv.Mat{}, fmt.Errorf("%q: %w: %v", path, ErrNotImage, err)
	}
	m, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil || m.Empty() {
		if err == nil {
			m.Close()
		}
		return gocv.Mat{}, fmt.Errorf("%q: %w: OpenCV cannot decode it", path, ErrNotImage)
	}
	return m, nil
}

func (s *ImageSource) loop(ctx context.Context) error {
	fps := s.opts.FPS
	if fps <= 0 {
		fps = 1
	}
	period := time.Duration(float64(time.Second) / fps)
	start := time.Now()
	idx := 0
	for {
		failed := 0
		for _, f := range s.files {
			if ctx.Err() != nil {
				return nil
			}
			mt := time.Duration(idx) * period
			idx++
			m, err := ReadImage(f)
			if err != nil {
				failed++
				s.failed++
				s.event(Event{Kind: EventError, Err: err})
				continue
			}
			if s.opts.Mode == ModeRealtime && !sleepCtx(ctx, time.Until(start.Add(mt))) {
				m.Close()
				return nil
			}
			if !s.emit(ctx, m, mt, f) {
				return nil
			}
		}
		if failed == len(s.files) {
			return fmt.Errorf("%w: none of the %d files could be read", ErrNotImage, len(s.files))
		}
		if !s.opts.Loop {
			break
		}
	}
	s.event(Event{Kind: EventEnd})
	if s.failed > 0 {
		return fmt.Errorf("%w: %d of %d reads failed", ErrNotImage, s.failed, idx)
	}
	return nil
}
