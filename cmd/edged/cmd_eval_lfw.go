package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/edged-dev/edged/eval"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/internal/facefile"
)

func init() {
	registerEval("lfw", runEvalLFW)
}

func runEvalLFW(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("eval lfw", flag.ContinueOnError)
	pairsPath := fs.String("pairs", "", "LFW pairs `FILE` (View 2 format: \"FOLDS<TAB>N\", then N matched and N mismatched pairs per fold)")
	imagesDir := fs.String("images", "", "images `DIR` holding Name/Name_NNNN.jpg (default: images/ next to the pairs file)")
	crop := fs.String("crop", facefile.CropAligned, "face chips: aligned (detect + landmarks; centre crop when no face is found) or center (fixed centre crop)")
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
	if *crop != facefile.CropAligned && *crop != facefile.CropCenter {
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

	p, err := facefile.Open(facefile.Options{Models: *models, Backbone: bb, Crop: *crop, Flip: *flip, Workers: *workers, Logger: newLogger(*debug, false)})
	if err != nil {
		return exitStartup, err
	}
	defer p.Close()

	var bar *progressBar
	rep, roc, err := eval.LFWVerify(ctx, pairs, p.EmbedCentralFace, eval.LFWOptions{Images: *imagesDir, RawDistance: bb.ID == infer.BackboneDlib,
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
	rep.WriteText(os.Stdout, *crop == facefile.CropAligned)
	return exitOK, nil
}
