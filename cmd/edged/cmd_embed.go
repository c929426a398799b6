package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	_ "image/jpeg" // chip files may be JPEG
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/internal/imagefile"
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

// Crop modes: how a face chip is obtained from an image.
const (
	cropAligned = "aligned" // detector + landmarks + similarity warp (detect package)
	cropCenter  = "center"  // fixed centre crop: the LFW convention, no detection
)

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
	Quality   float32      `json:"quality"`        // overall quality score 0..1 (the issue's contract: a number)
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
	crop := fs.String("crop", cropAligned, "how to get a face chip from an image: aligned (detect + landmarks) or center (fixed centre crop, LFW style)")
	flip := fs.Bool("flip", false, "average each embedding with that of the mirrored chip")
	batch := fs.Int("batch", 16, "chips per network run (--chip); 16 is the fastest per chip on 2 cores here (BENCHMARKS.md)")
	list := fs.String("list", "", "read more paths, one per line, from `FILE` (- for stdin)")
	workers := fs.Int("workers", runtime.NumCPU(), "files processed at once")
	models := fs.String("models", defaultModelDir(), "model `DIR`")
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if *crop != cropAligned && *crop != cropCenter {
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
	paths, err := embedInputs(fs.Args(), *list, os.Stdin)
	if err != nil {
		return exitUsage, err
	}
	logger := newLogger(*debug, false)
	bb, err := lookupBackbone(*backbone, "")
	if err != nil {
		return exitUsage, err
	}

	p, err := newFacePipeline(*models, bb, *crop, *chipMode, *flip, *workers, *batch, logger)
	if err != nil {
		return exitStartup, err
	}
	defer p.Close()

	var failed int
	if *chipMode {
		failed, err = p.chipLines(ctx, paths, *workers, os.Stdout, newProgressBar("embed", len(paths)))
	} else {
		failed, err = runOrdered(ctx, paths, *workers, p.imageLine, os.Stdout, newProgressBar("embed", len(paths)))
	}
	if err != nil {
		return exitFailure, err
	}
	if failed > 0 {
		return exitFailure, fmt.Errorf("%d of %d files failed", failed, len(paths))
	}
	return exitOK, nil
}

// facePipeline turns image files into faces with embeddings.
type facePipeline struct {
	crop     string
	backbone *infer.Backbone
	det      *detect.Detector // nil unless crop == aligned (and not chip mode)
	emb      *infer.Embedder
}

func newFacePipeline(models string, bb *infer.Backbone, crop string, chipMode, flip bool, workers, batch int, logger *slog.Logger) (*facePipeline, error) {
	p := &facePipeline{crop: crop, backbone: bb}
	if !chipMode && crop == cropAligned {
		opts := detect.DefaultOptions(models)
		opts.Workers = workers
		opts.Template = bb.Template
		opts.Logger = logger
		det, err := detect.New(opts)
		if err != nil {
			return nil, err
		}
		p.det = det
	}
	emb, err := infer.NewEmbedder(models, infer.Options{Backbone: bb.ID, Flip: flip, MaxBatch: batch, Logger: logger})
	if err != nil {
		p.Close()
		return nil, err
	}
	p.emb = emb
	return p, nil
}

func (p *facePipeline) Close() {
	if p.det != nil {
		p.det.Close()
	}
	if p.emb != nil {
		p.emb.Close()
	}
}

// faces finds the faces of an image file, each with its chip.
func (p *facePipeline) faces(path string) ([]face.Face, error) {
	if p.det != nil {
		return p.det.DetectFile(path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	img, err := detect.DecodeImage(data)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	f, err := centerCropFace(img, p.backbone.InputSize)
	if err != nil {
		return nil, err
	}
	return []face.Face{f}, nil
}

// imageLine is the output line for one image: its faces and embeddings.
func (p *facePipeline) imageLine(path string) ([]byte, error) {
	faces, err := p.faces(path)
	if err != nil {
		return nil, err
	}
	chips := make([]face.Chip, len(faces))
	for i, f := range faces {
		chips[i] = f.Chip
	}
	embs, err := p.emb.Embed(chips)
	if err != nil {
		return nil, err
	}
	line := embedLine{File: path, Faces: make([]embedFaceJSON, len(faces))}
	if p.det == nil {
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

// chipLines embeds chip files and writes one line each, in input order.
// Whole-process time is what a user sees: files are decoded by `workers`
// goroutines a batch at a time, and each batch goes to the network in one
// session run (the embedder's MaxBatch), instead of one file per call.
func (p *facePipeline) chipLines(ctx context.Context, paths []string, workers int, w io.Writer, bar *progress.Bar) (int, error) {
	batch := p.emb.Options().MaxBatch
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	defer bar.Finish()
	failed := 0
	for start := 0; start < len(paths); start += batch {
		if err := ctx.Err(); err != nil {
			return failed, err
		}
		group := paths[start:min(start+batch, len(paths))]
		chips := make([]face.Chip, len(group))
		errs := make([]error, len(group))
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(workers, len(group)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					chips[i], errs[i] = readChipFile(group[i], p.backbone.InputSize)
				}
			}()
		}
		for i := range group {
			next <- i
		}
		close(next)
		wg.Wait()
		var ok []face.Chip
		for i, c := range chips {
			if errs[i] == nil {
				ok = append(ok, c)
			}
		}
		embs, err := p.emb.Embed(ok)
		if err != nil {
			return failed, err
		}
		k := 0
		for i, path := range group {
			var line []byte
			if errs[i] != nil {
				failed++
				line, _ = json.Marshal(embedErrorLine{File: path, Error: errs[i].Error()})
			} else {
				line, _ = json.Marshal(embedChipLine{File: path, Embedding: embs[k]})
				k++
			}
			if _, err := bw.Write(append(line, '\n')); err != nil {
				return failed, err
			}
		}
		bw.Flush()
		bar.Add(len(group))
	}
	return failed, nil
}

// readChipFile decodes a size x size PNG or JPEG chip with Go's decoders
// (exact for PNG, which the golden vectors rely on).
func readChipFile(path string, size int) (face.Chip, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return face.Chip{}, err
	}
	info, err := imagefile.Check(data)
	if err != nil {
		return face.Chip{}, err
	}
	if info.Width != size || info.Height != size {
		return face.Chip{}, fmt.Errorf("%w: image is %dx%d, the backbone takes %dx%d chips (--backbone?)", face.ErrChipSize, info.Width, info.Height, size, size)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return face.Chip{}, fmt.Errorf("decode %s: %w", info.Format, err)
	}
	return face.ChipFromImage(img)
}

// centerCropFace cuts the fixed centre square used for LFW without a
// detector: side 0.56 of the shorter edge (rows/cols 55..195 of a 250x250
// image), resized to size x size with bilinear interpolation.
func centerCropFace(img gocv.Mat, size int) (face.Face, error) {
	w, h := img.Cols(), img.Rows()
	side := int(0.56*float64(min(w, h)) + 0.5)
	if side < 8 {
		return face.Face{}, fmt.Errorf("image %dx%d is too small for a face", w, h)
	}
	box := image.Rect((w-side)/2, (h-side)/2, (w-side)/2+side, (h-side)/2+side)
	roi := img.Region(box)
	defer roi.Close()
	resized := gocv.NewMat()
	defer resized.Close()
	gocv.Resize(roi, &resized, image.Pt(size, size), 0, 0, gocv.InterpolationLinear)
	rgb := gocv.NewMat()
	defer rgb.Close()
	gocv.CvtColor(resized, &rgb, gocv.ColorBGRToRGB)
	pix, err := rgb.DataPtrUint8()
	if err != nil {
		return face.Face{}, err
	}
	chip := face.Chip{Size: size, Pix: append([]uint8(nil), pix...)}
	if err := chip.Validate(); err != nil {
		return face.Face{}, err
	}
	return face.Face{
		Box:     box,
		Aligned: false,
		Chip:    chip,
		Quality: face.Quality{Size: float32(side), Issue: "not aligned (centre crop)"},
	}, nil
}

// embedInputs expands the command line's paths and the --list file into
// the ordered list of files: a directory becomes its image files, walked
// recursively in sorted order; other paths are kept as given (a missing
// file is reported on its own line later).
func embedInputs(args []string, list string, stdin io.Reader) ([]string, error) {
	all := append([]string(nil), args...)
	if list != "" {
		var r io.Reader = stdin
		if list != "-" {
			f, err := os.Open(list)
			if err != nil {
				return nil, fmt.Errorf("--list: %w", err)
			}
			defer f.Close()
			r = f
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			if line := strings.TrimRight(sc.Text(), "\r"); strings.TrimSpace(line) != "" {
				all = append(all, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--list %s: %w", list, err)
		}
	}
	var out []string
	for _, p := range all {
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				out = append(out, path) // unreadable: reported as an error line
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if !d.IsDir() && imagefile.IsImageName(d.Name()) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// runOrdered processes paths with `workers` goroutines and writes one line
// per path to w in input order, an error line for each failure. It returns
// the number of failures; a cancelled ctx stops it early with ctx's error.
func runOrdered(ctx context.Context, paths []string, workers int, process func(string) ([]byte, error), w io.Writer, bar *progress.Bar) (int, error) {
	type result struct {
		i      int
		line   []byte
		failed bool
	}
	jobs := make(chan int)
	results := make(chan result, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				line, err := process(paths[i])
				r := result{i: i, line: line}
				if err != nil {
					r.failed = true
					r.line, _ = json.Marshal(embedErrorLine{File: paths[i], Error: err.Error()})
				}
				results <- r
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range paths {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(results)
	}()

	bw := bufio.NewWriter(w)
	defer bw.Flush()
	defer bar.Finish()
	pending := map[int]result{}
	next, failed := 0, 0
	var writeErr error
	for r := range results {
		pending[r.i] = r
		bar.Add(1)
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if r.failed {
				failed++
			}
			if writeErr == nil {
				_, writeErr = bw.Write(append(r.line, '\n'))
			}
		}
		if len(pending) == 0 {
			bw.Flush() // keep a slow run's output flowing
		}
	}
	if writeErr != nil {
		return failed, writeErr
	}
	if next < len(paths) {
		if err := ctx.Err(); err != nil {
			return failed, err
		}
		return failed, errors.New("stopped early")
	}
	return failed, nil
}
