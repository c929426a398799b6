package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"os"
	"strconv"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/capture"
	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/internal/imagefile"
	"github.com/edged-dev/edged/pipeline/vision"
)

func init() {
	register(&Command{
		Name:  "mkvideo",
		Usage: "--out FILE [--size WxH] [--fps N] SEGMENT...   (SEGMENT: TILE[+TILE...], TILE: FILE[@START][:SECONDS] | blank:SECONDS)",
		Short: "compose a test video from videos, photos and blank frames (demos, replay and bench inputs)",
		Run:   runMkvideo,
	})
}

// A segment is a stretch of the output video; its tiles are shown side by
// side. Video tiles play from START for SECONDS (default: to their end);
// photos and blank tiles are held for SECONDS (default 3 s).
type tileSpec struct {
	path     string
	blank    bool
	start    time.Duration
	duration time.Duration // 0: to the end (videos), 3 s (photos)
}

func parseTile(s string) (tileSpec, error) {
	var t tileSpec
	if rest, ok := strings.CutPrefix(s, "blank:"); ok {
		d, err := parseSeconds(rest)
		if err != nil || d <= 0 {
			return t, fmt.Errorf("tile %q: blank needs a duration in seconds", s)
		}
		return tileSpec{blank: true, duration: d}, nil
	}
	// FILE[@START][:SECONDS]: the suffixes are parsed from the right so a
	// path may contain ':' or '@' before them.
	if i := strings.LastIndexByte(s, ':'); i > 0 {
		if d, err := parseSeconds(s[i+1:]); err == nil {
			if d <= 0 {
				return t, fmt.Errorf("tile %q: duration must be positive", s)
			}
			t.duration, s = d, s[:i]
		}
	}
	if i := strings.LastIndexByte(s, '@'); i > 0 {
		if d, err := parseSeconds(s[i+1:]); err == nil {
			if d < 0 {
				return t, fmt.Errorf("tile %q: start must not be negative", s)
			}
			t.start, s = d, s[:i]
		}
	}
	if s == "" {
		return t, errors.New("empty tile")
	}
	t.path = s
	return t, nil
}

// parseSeconds reads "2.5" (seconds) or a Go duration ("2500ms").
func parseSeconds(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

// tile produces one tile's frames.
type tile struct {
	spec  tileSpec
	still gocv.Mat // photo or blank
	src   capture.Source
	cur   *capture.Frame
	ended bool
}

func openTile(ctx context.Context, spec tileSpec, w, h int) (*tile, error) {
	t := &tile{spec: spec}
	if spec.blank {
		t.still = gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
		return t, nil
	}
	if imagefile.IsImageName(spec.path) {
		data, err := os.ReadFile(spec.path)
		if err != nil {
			return nil, err
		}
		m, err := detect.DecodeImage(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.path, err)
		}
		t.still = m
		return t, nil
	}
	src, err := capture.Open(spec.path, capture.Options{Mode: capture.ModeFast})
	if err != nil {
		return nil, err
	}
	if err := src.Start(ctx); err != nil {
		src.Close()
		return nil, err
	}
	t.src = src
	return t, nil
}

// frameAt returns the tile's image at time t of its segment (nil when a
// video tile has ended); the tile keeps ownership.
func (t *tile) frameAt(at time.Duration) *gocv.Mat {
	if t.src == nil {
		return &t.still
	}
	want := t.spec.start + at
	for !t.ended && (t.cur == nil || t.cur.MediaTime+time.Millisecond < want) {
		f, ok := <-t.src.Frames()
		if !ok {
			t.ended = true
			break
		}
		if t.cur != nil {
			t.cur.Release()
		}
		t.cur = f
	}
	if t.cur == nil {
		return nil
	}
	return &t.cur.Mat
}

// length is the tile's own length (0: unknown, to its end).
func (t *tile) length() time.Duration {
	if t.spec.duration > 0 {
		return t.spec.duration
	}
	if t.src == nil {
		return 3 * time.Second
	}
	if vs, ok := t.src.(*capture.VideoSource); ok && vs.FrameCount() > 0 {
		return time.Duration(float64(vs.FrameCount())/vs.FPS()*float64(time.Second)) - t.spec.start
	}
	return 0
}

func (t *tile) close() {
	if t.cur != nil {
		t.cur.Release()
	}
	if t.src != nil {
		t.src.Close()
	}
	if t.still.Ptr() != nil {
		t.still.Close()
	}
}

func runMkvideo(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("mkvideo", flag.ContinueOnError)
	out := fs.String("out", "", "output video `file` (.mp4, .mkv or .avi)")
	size := fs.String("size", "1280x720", "frame size `WxH`")
	fps := fs.Float64("fps", 25, "frames per second")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	var w, h int
	if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil || w < 32 || h < 32 || w > 7680 || h > 4320 || w%2 != 0 || h%2 != 0 {
		return exitUsage, usageError("--size %q: want WxH, even, 32x32 .. 7680x4320", *size)
	}
	if *fps < 1 || *fps > 240 {
		return exitUsage, usageError("--fps must be 1..240")
	}
	if *out == "" || fs.NArg() == 0 {
		return exitUsage, usageError("need --out and at least one SEGMENT")
	}
	var segs [][]tileSpec
	for _, a := range fs.Args() {
		var seg []tileSpec
		for _, part := range strings.Split(a, "+") {
			t, err := parseTile(part)
			if err != nil {
				return exitUsage, usageError("%v", err)
			}
			if !t.blank {
				if st, err := os.Stat(t.path); err != nil || st.IsDir() {
					return exitFailure, fmt.Errorf("%s: not a file", t.path)
				}
			}
			seg = append(seg, t)
		}
		segs = append(segs, seg)
	}
	wr, err := vision.NewAnnotator(*out, *fps)
	if err != nil {
		return exitUsage, usageError("%v", err)
	}
	if err := wr.Open(w, h); err != nil {
		return exitFailure, err
	}
	canvas := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer canvas.Close()
	frames := 0
	for si, seg := range segs {
		n, err := writeSegment(ctx, wr.Video, &canvas, seg, w, h, *fps)
		frames += n
		if err != nil {
			wr.Close()
			return exitFailure, fmt.Errorf("segment %d: %w", si+1, err)
		}
	}
	if err := wr.Close(); err != nil {
		return exitFailure, err
	}
	fmt.Printf("wrote %s: %d frames, %dx%d, %.3g fps, %.1f s\n", *out, frames, w, h, *fps, float64(frames)/(*fps))
	return exitOK, nil
}

func writeSegment(ctx context.Context, vw *gocv.VideoWriter, canvas *gocv.Mat, specs []tileSpec, w, h int, fps float64) (int, error) {
	cellW := w / len(specs)
	tiles := make([]*tile, 0, len(specs))
	defer func() {
		for _, t := range tiles {
			t.close()
		}
	}()
	var length time.Duration
	for _, s := range specs {
		t, err := openTile(ctx, s, cellW, h)
		if err != nil {
			return 0, err
		}
		tiles = append(tiles, t)
		length = max(length, t.length())
	}
	if length <= 0 {
		length = 10 * time.Minute // a video of unknown length: until it ends
	}
	n := int(length.Seconds()*fps + 0.5)
	written := 0
	scaled := gocv.NewMat()
	defer scaled.Close()
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			return written, ctx.Err()
		}
		at := time.Duration(float64(i) / fps * float64(time.Second))
		canvas.SetTo(gocv.NewScalar(0, 0, 0, 0))
		live := false
		for k, t := range tiles {
			m := t.frameAt(at)
			if m == nil {
				continue
			}
			live = live || t.src == nil || !t.ended
			// Letterbox into the cell, centred.
			sw, sh := m.Cols(), m.Rows()
			scale := min(float64(cellW)/float64(sw), float64(h)/float64(sh))
			dw, dh := max(1, int(float64(sw)*scale)), max(1, int(float64(sh)*scale))
			gocv.Resize(*m, &scaled, image.Pt(dw, dh), 0, 0, gocv.InterpolationArea)
			x0, y0 := k*cellW+(cellW-dw)/2, (h-dh)/2
			roi := canvas.Region(image.Rect(x0, y0, x0+dw, y0+dh))
			scaled.CopyTo(&roi)
			roi.Close()
		}
		if !live {
			break // every video tile ended
		}
		if err := vw.Write(*canvas); err != nil {
			return written, err
		}
		written++
	}
	return written, nil
}
