package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/finetune"
)

func init() {
	register(&Command{
		Name: "train",
		Usage: "--images DIR [--loss triplet|contrastive] [--mining batch-hard|semi-hard|batch-all] [--unfreeze]\n" +
			"       [--epochs N] [--out FILE] [--data DIR [--activate]] [--fresh] ...",
		Short: "train the head (or head + last backbone stage) on a folder-per-person image set",
		Run:   runTrain,
	})
}

func runTrain(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	imagesDir := fs.String("images", "", "folder-per-person image set (DIR/<person>/*.jpg)")
	minImages := fs.Int("min-images", 2, "people with fewer images are left out (a person needs 2 to give a positive)")
	lossName := fs.String("loss", "triplet", "triplet or contrastive")
	miningName := fs.String("mining", "batch-hard", "triplet mining: batch-hard, semi-hard or batch-all")
	margin := fs.Float64("margin", 0, "loss margin (0: 0.2 for triplet, 1.0 for contrastive; on unit vectors)")
	squared := fs.Bool("squared", false, "triplet loss on squared distances")
	epochs := fs.Int("epochs", 20, "passes over the training set")
	batchPeople := fs.Int("batch-people", 8, "triplet batch: P people ...")
	batchPer := fs.Int("batch-per-person", 4, "... times K images each")
	batchPairs := fs.Int("batch-pairs", 256, "contrastive batch in pairs (1 positive : 3 negatives)")
	lr := fs.Float64("lr", 0, "learning rate (0: 1e-3 Adam, 1e-2 momentum)")
	optimizer := fs.String("optimizer", "adam", "adam or momentum")
	layers := fs.Int("layers", 1, "head layers (1, or 2 with a PReLU between)")
	unfreeze := fs.Bool("unfreeze", false, "also train the backbone's last residual stage and FC layer")
	holdout := fs.Float64("holdout", 0.2, "fraction of the people held out for the final evaluation (never trained on)")
	seed := fs.Int64("seed", 1, "seed of the split and the batches")
	ckpt := fs.String("checkpoint", "", "checkpoint file (default: in the user cache directory, named after the data and options)")
	every := fs.Int("checkpoint-every", 200, "steps between checkpoints (also at each epoch end and on interrupt)")
	fresh := fs.Bool("fresh", false, "ignore an existing checkpoint (default: resume from it)")
	cachePath := fs.String("cache", "", "embedding cache file (default: in the user cache directory)")
	out := fs.String("out", "", "write the trained head here (`edged model import FILE` stores it)")
	outBackbone := fs.String("out-backbone", "", "with --unfreeze: write the trained backbone stage here")
	sf := addStoreCLIFlags(fs)
	activate := fs.Bool("activate", false, "with --data: make the stored head the active one")
	models := fs.String("models", defaultModelDir(), "model directory")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return exitUsage, err
	}
	if *imagesDir == "" {
		return exitUsage, usageError("--images DIR is required")
	}
	loss, err := finetune.ParseLoss(*lossName)
	if err != nil {
		return exitUsage, usageError("%v", err)
	}
	mining, err := finetune.ParseMining(*miningName)
	if err != nil {
		return exitUsage, usageError("%v", err)
	}
	var opt finetune.Optimizer
	switch *optimizer {
	case "adam":
		opt = finetune.Adam
	case "momentum":
		opt = finetune.Momentum
	default:
		return exitUsage, usageError("--optimizer %q (want adam or momentum)", *optimizer)
	}
	if *holdout <= 0 || *holdout >= 1 {
		return exitUsage, usageError("--holdout must be in (0,1)")
	}
	if *epochs < 1 || *layers < 1 || *layers > 2 || *batchPeople < 2 || *batchPer < 2 || *batchPairs < 1 {
		return exitUsage, usageError("--epochs >= 1, --layers 1 or 2, --batch-people >= 2, --batch-per-person >= 2, --batch-pairs >= 1")
	}
	storeHead := *sf.data != "" || *sf.config != ""
	if *unfreeze && storeHead {
		// The store keeps raw vectors of the frozen backbone; a head trained
		// on top of a changed backbone would not fit them.
		return exitUsage, usageError("--unfreeze changes the backbone: its head cannot be stored for the frozen network's gallery (use --out/--out-backbone)")
	}
	if *outBackbone != "" && !*unfreeze {
		return exitUsage, usageError("--out-backbone needs --unfreeze")
	}
	if *activate && !storeHead {
		return exitUsage, usageError("--activate needs --data DIR")
	}
	logger := newLogger(*sf.debug, false)

	to := finetune.TrainerOptions{Loss: loss, Margin: *margin, Squared: *squared, Mining: mining, Optimizer: opt,
		LearningRate: *lr, Layers: *layers, Threads: 2, Unfreeze: *unfreeze}
	var bar *progressBar
	last := 0
	progress := func(label string) func(done, total int) {
		return func(done, total int) {
			if done == 0 {
				bar, last = newProgressBar(label, total), 0
			}
			bar.Add(done - last)
			last = done
		}
	}
	run, err := finetune.NewFolderRun(finetune.FolderOptions{Images: *imagesDir, MinImages: *minImages, Models: *models, Trainer: to,
		Epochs: *epochs, BatchPeople: *batchPeople, BatchPerPerson: *batchPer, BatchPairs: *batchPairs, Seed: *seed,
		CheckpointEvery: *every, Holdout: *holdout, Checkpoint: *ckpt, Fresh: *fresh, Cache: *cachePath,
		Out: *out, OutBackbone: *outBackbone, OnEmbed: progress("embedding"), OnStep: progress("training"), Logger: logger})
	if err != nil {
		return exitFailure, err
	}
	do := detect.DefaultOptions(*models)
	do.Logger = logger
	det, err := detect.New(do)
	if err != nil {
		return exitFailure, err
	}
	err = run.Embed(ctx, det.DetectFile)
	bar.Finish()
	det.Close()
	if err != nil {
		return exitFailure, err
	}
	res, err := run.Train(ctx)
	bar.Finish()
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "interrupted: checkpoint saved in %s; run the same command again to resume\n", run.Checkpoint())
		return exitFailure, nil
	}
	if err != nil {
		return exitFailure, err
	}
	if storeHead {
		st, _, err := sf.open(false)
		if err != nil {
			return exitFailure, err
		}
		_, err = res.StoreHead(st, *activate)
		st.Close()
		if err != nil {
			return exitFailure, err
		}
	}
	if *asJSON {
		return exitOK, json.NewEncoder(os.Stdout).Encode(res.Report)
	}
	printTrainReport(res.Report, res.Decision)
	return exitOK, nil
}

func printTrainReport(rep finetune.FolderReport, dec finetune.Decision) {
	fmt.Printf("trained a head with %s loss", rep.Loss)
	if rep.Mining != "" {
		fmt.Printf(" (%s mining)", rep.Mining)
	}
	if rep.Unfreeze {
		fmt.Print(" and the backbone's last stage")
	}
	fmt.Printf(" on %d people; %d images (%d without a face)\n", rep.TrainPeople, rep.Images, rep.NoFace)
	fmt.Printf("%d steps", rep.Steps)
	if rep.ResumedAt > 0 {
		fmt.Printf(" (resumed at step %d)", rep.ResumedAt)
	}
	fmt.Printf(", %.1f s, %.1f ms/step, final loss %.4f\n\n", rep.TrainSeconds, rep.MsPerStep, rep.FinalLoss)
	fmt.Printf("evaluation on %d people never trained on (%s):\n", rep.EvalPeople, rep.EvalProtocol)
	row := func(name string, m *finetune.Metrics) {
		fmt.Printf("  %-8s top-1 %.4f  DIR@FAR1%% %.4f  DIR@FAR0.1%% %.4f  TAR@FAR1%% %.4f  unseen AUC %.4f\n",
			name, m.Top1, m.DIRAtFAR1, m.DIRAtFAR01, m.TARAtFAR1, m.UnseenAUC)
	}
	row("frozen", rep.Frozen)
	row("trained", rep.Trained)
	fmt.Println("  " + dec.Reason)
	if rep.Out != "" {
		fmt.Printf("head written to %s (store it with `edged model import %s`)\n", rep.Out, rep.Out)
	}
	if rep.OutBackbone != "" {
		fmt.Printf("backbone stage written to %s\n", rep.OutBackbone)
	}
	if rep.HeadVersion != "" {
		state := "stored inactive (`edged model activate " + rep.HeadVersion + "`)"
		if rep.HeadActivated {
			state = "stored and active"
		}
		fmt.Printf("head version %s %s\n", rep.HeadVersion, state)
	}
}
