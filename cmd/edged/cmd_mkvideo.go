package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/edged-dev/edged/internal/mkvideo"
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
	var segs [][]mkvideo.Tile
	for _, a := range fs.Args() {
		var seg []mkvideo.Tile
		for _, part := range strings.Split(a, "+") {
			t, err := mkvideo.ParseTile(part)
			if err != nil {
				return exitUsage, usageError("%v", err)
			}
			if !t.Blank {
				if st, err := os.Stat(t.Path); err != nil || st.IsDir() {
					return exitFailure, fmt.Errorf("%s: not a file", t.Path)
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
	frames, err := mkvideo.Compose(ctx, wr, w, h, segs)
	if err != nil {
		return exitFailure, err
	}
	fmt.Printf("wrote %s: %d frames, %dx%d, %.3g fps, %.1f s\n", *out, frames, w, h, *fps, float64(frames)/(*fps))
	return exitOK, nil
}
