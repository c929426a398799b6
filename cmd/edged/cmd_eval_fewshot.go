package main

import (
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edged-dev/edged/degrade"
	"github.com/edged-dev/edged/eval"
	"github.com/edged-dev/edged/eval/fewshotft"
	ftopts "github.com/edged-dev/edged/finetune"
	"github.com/edged-dev/edged/service"
)

func init() { registerEval("fewshot", runEvalFewshot) }

// runEvalFewshot is `edged eval fewshot`: flags, the real detector and
// embedder, and the report; the harness is eval.FewShot (the fine-tune
// step eval/fewshotft).
func runEvalFewshot(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("eval fewshot", flag.ContinueOnError)
	imagesDir := fs.String("images", "", "folder-per-person image set (DIR/<person>/*.jpg)")
	shotsFlag := fs.String("shots", "1,5", "comma-separated numbers of enrollment images per person")
	minImages := fs.Int("min-images", 10, "people with at least this many images are enrolled, the others are strangers")
	asJSON := fs.Bool("json", false, "print one JSON object")
	models := fs.String("models", defaultModelDir(), "model directory")
	backbone := addBackboneFlag(fs)
	threshold := fs.Float64("threshold", 0, "fixed distance threshold (0: the gallery's fitted default)")
	workers := fs.Int("workers", 2, "detection workers")
	debug := fs.Bool("debug", false, "debug logging")
	finetune := fs.Bool("finetune", false, "also fine-tune on the enrollments and report both (results[].finetuned, guard)")
	seenShare := fs.Float64("seen-strangers", 0, "with --finetune: this fraction of the strangers (by person) is seen by the device before the fine-tune "+
		"(their faces become unknown-face clusters, as the daemon files unknown tracks); only the others are stranger probes, for frozen and fine-tuned alike")
	degradeFlag := fs.String("degrade", "", "turn every probe and stranger image into a frame of another camera domain before detection: night "+
		"(1/3 size INTER_AREA, grey, Gaussian noise sigma 4 seeded from the file name, JPEG q50, back to size INTER_LINEAR, 3 channels); enrollment shots stay clean")
	experience := fs.Float64("experience", 0.5, "before scoring, the device lives through this fraction of each known person's non-enrollment images and of the strangers "+
		"(by person), each as a two-frame track through the daemon's recognition path (tracker, decision, experience, unknown clusters); "+
		"none of them is a probe; results[].experienced; 0: off")
	xMinConf := fs.Float64("experience-min-confidence", 0, "a track's decision confidence needed to file its frames as experience (0: the daemon's default)")
	half := fs.Int("half", 0, "1 or 2: only one half of the people (by FNV-64a of the name; fit defaults on one, report on the other); 0: all")
	cacheFile := fs.String("cache", "", "keep detections and embeddings in this file across runs (development aid)")
	ftEpochs := fs.Int("ft-epochs", 0, "with --finetune: epochs (0: the job's default)")
	ftLR := fs.Float64("ft-lr", 0, "with --finetune: learning rate (0: the job's default)")
	ftAnchor := fs.Float64("ft-anchor", 0, "with --finetune: anchor decay toward the identity (0: default; negative: none)")
	ftLayers := fs.Int("ft-layers", 0, "with --finetune: head layers, 1 linear, 2 with a PReLU (0: default)")
	ftMargin := fs.Float64("ft-margin", 0, "with --finetune: contrastive margin (0: default)")
	ftShare := fs.Float64("ft-stranger-share", 0, "with --finetune: share of negatives against strangers (0: default)")
	ftNeg := fs.Int("ft-negatives", 0, "with --finetune: negatives per positive (0: default 3)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return exitUsage, err
	}
	if *imagesDir == "" {
		return exitUsage, usageError("--images DIR is required")
	}
	bb, err := lookupBackbone(*backbone, "")
	if err != nil {
		return exitUsage, err
	}
	var shots []int
	for _, s := range strings.Split(*shotsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return exitUsage, usageError("--shots: %q is not a positive number", s)
		}
		shots = append(shots, n)
	}
	if *minImages < 1 {
		return exitUsage, usageError("--min-images must be at least 1")
	}
	degradeName, err := degrade.Parse(*degradeFlag)
	if err != nil {
		return exitUsage, usageError("--degrade: %v", err)
	}
	if *experience < 0 || *experience >= 1 || *experience != *experience {
		return exitUsage, usageError("--experience must be in [0, 1)")
	}
	seenFrac := *seenShare
	if seenFrac < 0 || seenFrac >= 1 || seenFrac != seenFrac {
		return exitUsage, usageError("--seen-strangers must be in [0, 1)")
	}
	if seenFrac > 0 && *experience > 0 {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "experience" })
		if explicit {
			return exitUsage, usageError("--seen-strangers is for --experience 0 (the experience sees that fraction of the strangers itself)")
		}
		*experience = 0 // the command as it was before --experience
	}
	if seenFrac > 0 && !*finetune {
		return exitUsage, usageError("--seen-strangers needs --finetune")
	}
	logger := newLogger(*debug, false)
	if !*debug {
		// Only problems: enrollment chatter would drown the report.
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	opts := eval.FewShotOptions{Shots: shots, MinImages: *minImages, SeenStrangers: seenFrac, Threshold: *threshold,
		Backbone: eval.FewShotBackbone{ID: bb.ID, Space: bb.Space, Dim: bb.Dim}, Workers: max(1, *workers), Logger: logger,
		Experience: *experience, ExperienceOptions: service.ExperienceOptions{MinConfidence: *xMinConf}}
	if degradeName == degrade.Night {
		opts.Degrade, opts.DegradeName = degrade.NightFrame, degradeName
	}
	opts.Half, opts.CacheFile = *half, *cacheFile
	if *finetune {
		opts.Finetune = fewshotft.WithOptions(ftopts.JobOptions{Epochs: *ftEpochs, StrangerShare: *ftShare,
			Pairs:   ftopts.PairOptions{NegativesPerPositive: *ftNeg},
			Trainer: ftopts.TrainerOptions{LearningRate: *ftLR, AnchorDecay: *ftAnchor, Layers: *ftLayers, Margin: *ftMargin}})
	}
	var bar *progressBar
	opts.Progress = func(done, total int) {
		if done == 1 {
			bar = newProgressBar("embedding", total)
		}
		bar.Add(1)
	}
	harness, err := eval.NewFewShot(*imagesDir, opts)
	if err != nil {
		return exitFailure, err
	}
	det, emb, err := newFaceModels(*models, bb, max(1, *workers), logger)
	if err != nil {
		return exitStartup, err
	}
	defer det.Close()
	defer emb.Close()
	start := time.Now()
	out, err := harness.Run(ctx, det, emb)
	bar.Finish()
	if err != nil {
		return exitFailure, err
	}
	if *asJSON {
		return exitOK, json.NewEncoder(os.Stdout).Encode(out.Report)
	}
	harness.WriteText(os.Stdout, out, time.Since(start))
	return exitOK, nil
}
