package capture

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/internal/imagefile"
)

// Source produces frames until its input ends, ctx is cancelled or it is
// closed; then it closes the Frames channel.
type Source interface {
	// Start begins capturing in the background. It returns an error only
	// when the source cannot start at all; live sources keep retrying.
	Start(ctx context.Context) error
	// Frames is closed by the source when it stops.
	Frames() <-chan *Frame
	// Close stops the source, waits for it and releases unread frames.
	// Later calls return ErrClosed.
	Close() error
}

// Frame is one captured image.
type Frame struct {
	Seq       uint64        // 1, 2, ... per source (continues across reconnects)
	Time      time.Time     // wall-clock capture time
	MediaTime time.Duration // position in a video file; for images the index/FPS; 0 for live sources
	Mat       gocv.Mat      // BGR, 8-bit
	Source    string        // the URL it came from (image files: the file's path)

	once sync.Once
}

// Release frees the Mat; call it once the last user is done. Safe to call
// more than once.
func (f *Frame) Release() {
	if f == nil {
		return
	}
	f.once.Do(func() { f.Mat.Close() })
}

// Kind is the kind of source Open chose.
type Kind string

// Source kinds.
const (
	KindDevice    Kind = "device"
	KindStream    Kind = "stream"
	KindGStreamer Kind = "gstreamer"
	KindVideo     Kind = "video"
	KindImages    Kind = "images"
)

// Modes for files.
const (
	ModeRealtime = "realtime" // paced to the frame rate, latest frame wins
	ModeFast     = "fast"     // as fast as the consumer goes, no drops
)

// Options configures a source. Zero fields take the documented defaults.
type Options struct {
	// Width, Height and FPS are requested from devices (0 = driver default).
	// For image sources in realtime mode FPS paces the images (default 1).
	Width  int     `yaml:"width"`
	Height int     `yaml:"height"`
	FPS    float64 `yaml:"fps"`
	// Mode is ModeRealtime (default) or ModeFast, for files.
	Mode string `yaml:"mode"`
	// Loop restarts files at the end (demos); Seq keeps increasing.
	Loop bool `yaml:"loop"`

	// MinBackoff and MaxBackoff bound the reconnect delay of live sources
	// (defaults 500ms and 30s); the delay doubles after each failed attempt
	// and Jitter (default 0.2) randomises it by +-20%.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	Jitter     float64       `yaml:"jitter"`
	// MaxRetries stops a live source after that many consecutive failed
	// reconnects (0 = retry until ctx ends).
	MaxRetries int `yaml:"max_retries"`

	// Buffer is the frame channel capacity in fast mode (default 2). Live and
	// realtime sources always use 1 (latest frame wins).
	Buffer int `yaml:"buffer"`

	// OnEvent receives outages and errors; it must not block for long.
	OnEvent func(Event)  `yaml:"-"`
	Logger  *slog.Logger `yaml:"-"`
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	o := Options{}
	o.fill()
	return o
}

func (o *Options) fill() {
	if o.Mode == "" {
		o.Mode = ModeRealtime
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Jitter == 0 {
		o.Jitter = 0.2
	}
	if o.Buffer == 0 {
		o.Buffer = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (o *Options) validate() error {
	switch {
	case o.Mode != ModeRealtime && o.Mode != ModeFast:
		return fmt.Errorf("%w: mode %q (want %q or %q)", ErrOptions, o.Mode, ModeRealtime, ModeFast)
	case o.Width < 0 || o.Height < 0 || o.FPS < 0:
		return fmt.Errorf("%w: size %dx%d fps %v", ErrOptions, o.Width, o.Height, o.FPS)
	case o.MinBackoff < 0 || o.MaxBackoff < o.MinBackoff:
		return fmt.Errorf("%w: backoff %v..%v", ErrOptions, o.MinBackoff, o.MaxBackoff)
	case o.Jitter < 0 || o.Jitter >= 1:
		return fmt.Errorf("%w: jitter %v not in [0,1)", ErrOptions, o.Jitter)
	case o.MaxRetries < 0 || o.Buffer < 1:
		return fmt.Errorf("%w: max retries %d, buffer %d", ErrOptions, o.MaxRetries, o.Buffer)
	}
	return nil
}

// Open returns a source for url (see the package documentation for the
// kinds). Files are checked now: a missing file, an empty folder or glob, or
// a file OpenCV cannot open as a video is an error here.
func Open(url string, opts Options) (Source, error) {
	opts.fill()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	url = strings.TrimSpace(url)
	if url == "" {
		return nil, fmt.Errorf("%w: empty url", ErrURL)
	}
	lower := strings.ToLower(url)
	switch {
	case strings.HasPrefix(url, "gst:"):
		p := strings.TrimSpace(strings.TrimPrefix(url, "gst:"))
		if p == "" {
			return nil, fmt.Errorf("%w: empty gstreamer pipeline", ErrURL)
		}
		if !strings.Contains(p, "appsink") {
			p += " ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
		}
		return newLive(url, KindGStreamer, p, opts), nil
	case hasAnyPrefix(lower, "rtsp://", "rtsps://", "rtmp://", "http://", "https://"):
		return newLive(url, KindStream, url, opts), nil
	case strings.HasPrefix(url, "/dev/video"):
		idx, err := strconv.Atoi(strings.TrimPrefix(url, "/dev/video"))
		if err != nil || idx < 0 {
			return nil, fmt.Errorf("%w: device %q", ErrURL, url)
		}
		return newDevice(url, idx, opts), nil
	case isIndex(url):
		idx, _ := strconv.Atoi(url)
		return newDevice(url, idx, opts), nil
	}
	path := strings.TrimPrefix(url, "file://")
	if strings.ContainsAny(path, "*?[") {
		files, err := filepath.Glob(path)
		if err != nil {
			return nil, fmt.Errorf("glob %q: %w", path, err)
		}
		files = keepImages(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("glob %q: %w: no .jpg/.png file matches", path, ErrNotFound)
		}
		return newImages(url, files, opts), nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", path, ErrNotFound)
	}
	if st.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("open %q: %w", path, err)
		}
		var files []string
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		files = keepImages(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("folder %q: %w: no .jpg/.png file in it", path, ErrNotFound)
		}
		return newImages(url, files, opts), nil
	}
	if imagefile.IsImageName(path) {
		return newImages(url, []string{path}, opts), nil
	}
	return openVideo(url, path, opts)
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func isIndex(s string) bool {
	if s == "" || len(s) > 3 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func keepImages(files []string) []string {
	out := files[:0]
	for _, f := range files {
		if imagefile.IsImageName(f) {
			if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
				out = append(out, f)
			}
		}
	}
	return out
}

// base is what every source shares: the frame channel, the lifecycle and
// the counters.
type base struct {
	url    string
	kind   Kind
	opts   Options
	frames chan *Frame
	latest bool // live delivery: drop the oldest frame when the consumer lags

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
	err     error

	seq     atomic.Uint64
	dropped atomic.Uint64
}

func newBase(url string, kind Kind, opts Options, latest bool) base {
	capacity := opts.Buffer
	if latest {
		capacity = 1
	}
	return base{url: url, kind: kind, opts: opts, frames: make(chan *Frame, capacity), latest: latest, done: make(chan struct{})}
}

// Frames implements Source.
func (b *base) Frames() <-chan *Frame { return b.frames }

// Kind is the kind of source.
func (b *base) Kind() Kind { return b.kind }

// Dropped is how many frames were dropped because the consumer lagged.
func (b *base) Dropped() uint64 { return b.dropped.Load() }

// Err is the error that ended the source (nil after a clean end of file or
// cancellation); valid once Frames is closed.
func (b *base) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *base) setErr(err error) {
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
}

// start runs loop in a goroutine that closes the channel when it returns.
func (b *base) start(ctx context.Context, loop func(ctx context.Context) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return ErrClosed
	case b.started:
		return ErrStarted
	}
	b.started = true
	ctx, b.cancel = context.WithCancel(ctx)
	go func() {
		defer close(b.done)
		defer close(b.frames)
		if err := loop(ctx); err != nil && ctx.Err() == nil {
			b.setErr(err)
			b.opts.Logger.Warn("capture ended", "source", b.url, "err", err)
		}
	}()
	return nil
}

// close stops the loop, waits for it and releases frames nobody read.
func (b *base) close(release func()) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.closed = true
	started, cancel := b.started, b.cancel
	b.mu.Unlock()
	if started {
		cancel()
		<-b.done
		for f := range b.frames {
			f.Release()
		}
	} else {
		close(b.frames)
	}
	if release != nil {
		release()
	}
	return nil
}

// emit hands a frame to the consumer: live delivery replaces a frame still
// waiting in the channel (counted as dropped); otherwise it waits. It returns
// false when ctx ended (the frame is released).
func (b *base) emit(ctx context.Context, mat gocv.Mat, mediaTime time.Duration, src string) bool {
	f := &Frame{Seq: b.seq.Add(1), Time: time.Now(), MediaTime: mediaTime, Mat: mat, Source: src}
	if !b.latest {
		select {
		case b.frames <- f:
			return true
		case <-ctx.Done():
			f.Release()
			return false
		}
	}
	for {
		if ctx.Err() != nil {
			f.Release()
			return false
		}
		select {
		case b.frames <- f:
			return true
		default:
		}
		select {
		case old := <-b.frames:
			old.Release()
			b.dropped.Add(1)
		default:
		}
	}
}

func (b *base) event(e Event) {
	e.Source = b.url
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	switch e.Kind {
	case EventDown, EventError:
		b.opts.Logger.Warn("capture "+string(e.Kind), "source", b.url, "err", e.Err, "attempt", e.Attempt)
	default:
		b.opts.Logger.Info("capture "+string(e.Kind), "source", b.url, "downtime", e.Downtime)
	}
	if b.opts.OnEvent != nil {
		b.opts.OnEvent(e)
	}
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
