// Package mkvideo composes test videos (demos, replay and bench inputs)
// from videos, photos and blank frames: segments play one after the
// other, the tiles of a segment side by side.
package mkvideo

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/capture"
	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/internal/imagefile"
	"github.com/edged-dev/edged/pipeline/vision"
)

// A segment is a stretch of the output video; its tiles are shown side by
// side. Video tiles play from START for SECONDS (default: to their end);
// photos and blank tiles are held for SECONDS (default 3 s).
type Tile struct {
	Path     string
	Blank    bool
	Start    time.Duration
	Duration time.Duration // 0: to the end (videos), 3 s (photos)
}

// ParseTile parses FILE[@START][:SECONDS] or blank:SECONDS.
func ParseTile(s string) (Tile, error) {
	var t Tile
	if rest, ok := strings.CutPrefix(s, "blank:"); ok {
		d, err := parseSeconds(rest)
		if err != nil || d <= 0 {
			return t, fmt.Errorf("tile %q: blank needs a duration in seconds", s)
		}
		return Tile{Blank: true, Duration: d}, nil
	}
	// FILE[@START][:SECONDS]: the suffixes are parsed from the right so a
	// path may contain ':' or '@' before them.
	if i := strings.LastIndexByte(s, ':'); i > 0 {
		if d, err := parseSeconds(s[i+1:]); err == nil {
			if d <= 0 {
				return t, fmt.Errorf("tile %q: duration must be positive", s)
			}
			t.Duration, s = d, s[:i]
		}
	}
	if i := strings.LastIndexByte(s, '@'); i > 0 {
		if d, err := parseSeconds(s[i+1:]); err == nil {
			if d < 0 {
				return t, fmt.Errorf("tile %q: start must not be negative", s)
			}
			t.Start, s = d, s[:i]
		}
	}
	if s == "" {
		return t, errors.New("empty tile")
	}
	t.Path = s
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
	spec  Tile
	still gocv.Mat // photo or blank
	src   capture.Source
	cur   *capture.Frame
	ended bool
}

func openTile(ctx context.Context, spec Tile, w, h int) (*tile, error) {
	t := &tile{spec: spec}
	if spec.Blank {
		t.still = gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
		return t, nil
	}
	if imagefile.IsImageName(spec.Path) {
		data, err := os.ReadFile(spec.Path)
		if err != nil {
			return nil, err
		}
		m, err := detect.DecodeImage(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Path, err)
		}
		t.still = m
		return t, nil
	}
	src, err := capture.Open(spec.Path, capture.Options{Mode: capture.ModeFast})
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
	want := t.spec.Start + at
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
	if t.spec.Duration > 0 {
		return t.spec.Duration
	}
	if t.src == nil {
		return 3 * time.Second
	}
	if vs, ok := t.src.(*capture.VideoSource); ok && vs.FrameCount() > 0 {
		return time.Duration(float64(vs.FrameCount())/vs.FPS()*float64(time.Second)) - t.spec.Start
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

// Compose writes the segments one after the other to wr as w x h frames at
// wr.FPS, the tiles of a segment side by side (letterboxed), and closes it.
// It returns the number of frames written.
func Compose(ctx context.Context, wr *vision.Annotator, w, h int, segs [][]Tile) (int, error) {
	if err := wr.Open(w, h); err != nil {
		return 0, err
	}
	canvas := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer canvas.Close()
	frames := 0
	for si, seg := range segs {
		n, err := writeSegment(ctx, wr.Video, &canvas, seg, w, h, wr.FPS)
		frames += n
		if err != nil {
			wr.Close()
			return frames, fmt.Errorf("segment %d: %w", si+1, err)
		}
	}
	return frames, wr.Close()
}

// BenchVideo writes `edged bench`'s default video to out: 10 s of
// franck.mp4 (from 10 s) beside audrey.jpg and cage.jpg from the media
// directory, 1280x720 at 30 fps.
func BenchVideo(ctx context.Context, out, media string) error {
	tiles := []Tile{
		{Path: filepath.Join(media, "franck.mp4"), Start: 10 * time.Second, Duration: 10 * time.Second},
		{Path: filepath.Join(media, "audrey.jpg"), Duration: 10 * time.Second},
		{Path: filepath.Join(media, "cage.jpg"), Duration: 10 * time.Second},
	}
	for _, t := range tiles {
		if st, err := os.Stat(t.Path); err != nil || st.IsDir() {
			return fmt.Errorf("%s: not a file (sample media missing?)", t.Path)
		}
	}
	wr, err := vision.NewAnnotator(out, 30)
	if err != nil {
		return err
	}
	_, err = Compose(ctx, wr, 1280, 720, [][]Tile{tiles})
	return err
}

func writeSegment(ctx context.Context, vw *gocv.VideoWriter, canvas *gocv.Mat, specs []Tile, w, h int, fps float64) (int, error) {
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
