package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"runtime"

	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/eval"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/infer"
)

func init() {
	registerEval("lfw", runEvalLFW)
}

func runEvalLFW(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("eval lfw", flag.ContinueOnError)
	pairsPath := fs.String("pairs", "", "LFW pairs `FILE` (View 2 format: \"FOLDS<TAB>N\", then N matched and N mismatched pairs per fold)")
	imagesDir := fs.String("images", "", "images `DIR` holding Name/Name_NNNN.jpg (default: images/ next to the pairs file)")
	crop := fs.String("crop", cropAligned, "face chips: aligned (detect + landmarks; centre crop when no face is found) or center (fixed centre crop)")
	flip := fs.Bool("flip", false, "average each embedding with that of the mirrored chip")
	asJSON := fs.Bool("json", false, "print one JSON object")
	rocPath := fs.String("roc", "", "draw the ROC curve into `FILE.png`")
	workers := fs.Int("workers", runtime.NumCPU(), "images processed at once")
	models := fs.String("models", defaultModelDir(), "model `DIR`")
	backbone := addBackboneFlag(fs)
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, usageError("unexpected argument %q", fs.Arg(0))
	}
	bb, err := lookupBackbone(*backbone, "")
	if err != nil {
		return exitUsage, err
	}
	if *pairsPath == "" {
		return exitUsage, usageError("--pairs is required")
	}
	if *crop != cropAligned && *crop != cropCenter {
		return exitUsage, usageError("--crop %q: want aligned or center", *crop)
	}
	if *workers < 1 {
		return exitUsage, usageError("--workers must be at least 1")
	}
	if *imagesDir == "" {
		*imagesDir = filepath.Join(filepath.Dir(*pairsPath), "images")
	}
	f, err := os.Open(*pairsPath)
	if err != nil {
		return exitFailure, err
	}
	pairs, err := eval.ParseLFWPairs(f)
	f.Close()
	if err != nil {
		return exitFailure, fmt.Errorf("%s: %w", *pairsPath, err)
	}
	if st, err := os.Stat(*imagesDir); err != nil || !st.IsDir() {
		return exitFailure, fmt.Errorf("--images %s: not a directory", *imagesDir)
	}

	p, err := newFacePipeline(*models, bb, *crop, false, *flip, *workers, 0, newLogger(*debug, false))
	if err != nil {
		return exitStartup, err
	}
	defer p.Close()

	var bar *progressBar
	embed := func(path string) (face.Embedding, bool, error) {
		f, found, err := p.centralFace(path)
		if err != nil {
			return nil, false, err
		}
		e, err := p.emb.Embed([]face.Chip{f.Chip})
		if err != nil {
			return nil, false, err
		}
		return e[0], found, nil
	}
	rep, roc, err := eval.LFWVerify(ctx, pairs, embed, eval.LFWOptions{Images: *imagesDir, RawDistance: bb.ID == infer.BackboneDlib,
		Crop: *crop, Backbone: bb.ID, Flip: *flip, Workers: *workers,
		Progress: func(done, total int) {
			if done == 1 {
				bar = newProgressBar("lfw", total)
			}
			bar.Add(1)
		}})
	bar.Finish()
	if err != nil {
		return exitFailure, err
	}
	if *rocPath != "" {
		if err := eval.WriteROCFile(*rocPath, roc); err != nil {
			return exitFailure, err
		}
	}
	if *asJSON {
		return exitOK, json.NewEncoder(os.Stdout).Encode(rep)
	}
	rep.WriteText(os.Stdout, *crop == cropAligned)
	return exitOK, nil
}

// centralFace returns the face of an LFW-style photo: among the detected
// faces, the highest-scored one whose box contains the image centre, else
// the one whose centre is nearest to it; with no face detected (or with
// --crop center), the fixed centre crop, and found=false for the former.
func (p *facePipeline) centralFace(path string) (f face.Face, found bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return face.Face{}, false, err
	}
	img, err := detect.DecodeImage(data)
	if err != nil {
		return face.Face{}, false, fmt.Errorf("%s: %w", path, err)
	}
	defer img.Close()
	if p.det == nil {
		f, err := centerCropFace(img, p.backbone.InputSize)
		return f, true, err
	}
	faces, err := p.det.Detect(img)
	if err != nil {
		return face.Face{}, false, fmt.Errorf("%s: %w", path, err)
	}
	if len(faces) == 0 {
		f, err := centerCropFace(img, p.backbone.InputSize)
		return f, false, err
	}
	c := image.Pt(img.Cols()/2, img.Rows()/2)
	best := -1
	for i, fc := range faces {
		if c.In(fc.Box) && (best < 0 || fc.Score > faces[best].Score) {
			best = i
		}
	}
	if best < 0 {
		bestDist := math.Inf(1)
		for i, fc := range faces {
			mid := fc.Box.Min.Add(fc.Box.Max).Div(2)
			if d := math.Hypot(float64(mid.X-c.X), float64(mid.Y-c.Y)); d < bestDist {
				best, bestDist = i, d
			}
		}
	}
	return faces[best], true, nil
}
