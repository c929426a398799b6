package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/internal/facefile"
	"github.com/edged-dev/edged/internal/progress"
)

func init() {
	register(&Command{
		Name:  "embed",
		Usage: "[--backbone ID] [--chip [--batch N]] [--crop aligned|center] [--flip] [--list FILE|-] [--workers N] [--models DIR] FILE|DIR...",
		Short: "embed the faces in images, or aligned chips (--chip: 112x112 for mobilefacenet, 150x150 for dlib): one JSON line per file",
		Run:   runEmbed,
	})
}

// centerCropNote is the note on lines produced with --crop center.
const centerCropNote = "centre crop (rows/cols 22%..78% of the image, resized to the backbone's chip size): no detection or alignment"

// embedChipLine is one line of `edged embed --chip`.
type embedChipLine struct {
	File      string    `json:"file"`
	Embedding []float32 `json:"embedding"`
}

// embedFaceJSON is one face of `edged embed`.
type embedFaceJSON struct {
	Box       [4]int       `json:"box"` // x, y, w, h in image pixels
	Score     float32      `json:"score"`
	Landmarks [][2]float32 `json:"landmarks"`      // RightEye, LeftEye, NoseTip, MouthRight, MouthLeft; [] when none
	Quality   float32      `json:"quality"`        // overall quality score 0..1 (the contract: a number)
	Detail    face.Quality `json:"quality_detail"` // its parts: size, blur, yaw, issue
	Aligned   bool         `json:"aligned"`
	Embedding []float32    `json:"embedding"`
}

// embedLine is one line of `edged embed` (one per image file).
type embedLine struct {
	File  string          `json:"file"`
	Faces []embedFaceJSON `json:"faces"`
	Note  string          `json:"note,omitempty"`
}

// embedErrorLine is the line for a file that could not be processed.
type embedErrorLine struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

func runEmbed(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("embed", flag.ContinueOnError)
	chipMode := fs.Bool("chip", false, "the files are aligned RGB chips of the backbone's size (PNG or JPEG): embed them as they are, in batches")
	backbone := addBackboneFlag(fs)
	crop := fs.String("crop", facefile.CropAligned, "how to get a face chip from an image: aligned (detect + landmarks) or center (fixed centre crop, LFW style)")
	flip := fs.Bool("flip", false, "average each embedding with that of the mirrored chip")
	batch := fs.Int("batch", 16, "chips per network run (--chip); 16 is the fastest per chip on 2 cores here (BENCHMARKS.md)")
	list := fs.String("list", "", "read more paths, one per line, from `FILE` (- for stdin)")
	workers := fs.Int("workers", runtime.NumCPU(), "files processed at once")
	models := fs.String("models", defaultModelDir(), "model `DIR`")
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if *crop != facefile.CropAligned && *crop != facefile.CropCenter {
		return exitUsage, usageError("--crop %q: want aligned or center", *crop)
	}
	if *workers < 1 {
		return exitUsage, usageError("--workers must be at least 1")
	}
	if *batch < 1 || *batch > 1024 {
		return exitUsage, usageError("--batch must be 1 .. 1024")
	}
	if fs.NArg() == 0 && *list == "" {
		return exitUsage, usageError("no FILE given (or --list)")
	}
	paths, err := facefile.Inputs(fs.Args(), *list, os.Stdin)
	if err != nil {
		return exitUsage, err
	}
	logger := newLogger(*debug, false)
	bb, err := lookupBackbone(*backbone, "")
	if err != nil {
		return exitUsage, err
	}

	p, err := facefile.Open(facefile.Options{Models: *models, Backbone: bb, Crop: *crop, Chips: *chipMode, Flip: *flip,
		Workers: *workers, MaxBatch: *batch, Logger: logger})
	if err != nil {
		return exitStartup, err
	}
	defer p.Close()

	var failed int
	if *chipMode {
		failed, err = chipLines(ctx, p, paths, *workers, os.Stdout, newProgressBar("embed", len(paths)))
	} else {
		process := func(path string) ([]byte, bool) {
			line, err := imageLine(p, path)
			if err != nil {
				return errorLine(path, err), false
			}
			return line, true
		}
		failed, err = facefile.RunOrdered(ctx, paths, *workers, process, os.Stdout, newProgressBar("embed", len(paths)))
	}
	if err != nil {
		return exitFailure, err
	}
	if failed > 0 {
		return exitFailure, fmt.Errorf("%d of %d files failed", failed, len(paths))
	}
	return exitOK, nil
}

// imageLine is the output line for one image: its faces and embeddings.
func imageLine(p *facefile.Pipeline, path string) ([]byte, error) {
	faces, embs, err := p.EmbedFile(path)
	if err != nil {
		return nil, err
	}
	line := embedLine{File: path, Faces: make([]embedFaceJSON, len(faces))}
	if !p.Aligned() {
		line.Note = centerCropNote
	}
	for i, f := range faces {
		j := embedFaceJSON{
			Box:       [4]int{f.Box.Min.X, f.Box.Min.Y, f.Box.Dx(), f.Box.Dy()},
			Score:     f.Score,
			Landmarks: [][2]float32{},
			Quality:   f.Quality.Score,
			Detail:    f.Quality,
			Aligned:   f.Aligned,
			Embedding: embs[i],
		}
		for _, pt := range f.Landmarks {
			j.Landmarks = append(j.Landmarks, [2]float32{pt.X, pt.Y})
		}
		line.Faces[i] = j
	}
	return json.Marshal(line)
}

// errorLine is the line for a file that could not be processed.
func errorLine(path string, err error) []byte {
	line, _ := json.Marshal(embedErrorLine{File: path, Error: err.Error()})
	return line
}

// chipLines embeds chip files and writes one line each, in input order,
// flushed after each batch.
func chipLines(ctx context.Context, p *facefile.Pipeline, paths []string, workers int, w io.Writer, bar *progress.Bar) (int, error) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	defer bar.Finish()
	failed := 0
	err := p.EmbedChipFiles(ctx, paths, workers, func(batch []facefile.ChipResult) error {
		for _, r := range batch {
			var line []byte
			if r.Err != nil {
				failed++
				line = errorLine(r.Path, r.Err)
			} else {
				line, _ = json.Marshal(embedChipLine{File: r.Path, Embedding: r.Embedding})
			}
			if _, err := bw.Write(append(line, '\n')); err != nil {
				return err
			}
		}
		bw.Flush()
		bar.Add(len(batch))
		return nil
	})
	return failed, err
}
