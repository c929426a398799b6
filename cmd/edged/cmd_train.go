package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/eval"
	"github.com/edged-dev/edged/finetune"
	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/store"
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

// trainReport is `edged train --json`.
type trainReport struct {
	Images        int                `json:"images"`
	NoFace        int                `json:"images_without_face"`
	People        int                `json:"people"`
	TrainPeople   int                `json:"train_people"`
	EvalPeople    int                `json:"eval_people"`
	Loss          string             `json:"loss"`
	Mining        string             `json:"mining,omitempty"`
	Unfreeze      bool               `json:"unfreeze"`
	Steps         int                `json:"steps"`
	ResumedAt     int                `json:"resumed_at_step,omitempty"`
	FinalLoss     float64            `json:"final_loss"`
	TrainSeconds  float64            `json:"train_seconds"`
	MsPerStep     float64            `json:"ms_per_step"`
	Frozen        *finetune.Metrics  `json:"frozen,omitempty"`
	Trained       *finetune.Metrics  `json:"trained,omitempty"`
	Gain          map[string]float64 `json:"gain,omitempty"`
	Better        bool               `json:"not_worse"`
	Out           string             `json:"out,omitempty"`
	OutBackbone   string             `json:"out_backbone,omitempty"`
	HeadVersion   string             `json:"head_version,omitempty"`
	Checkpoint    string             `json:"checkpoint,omitempty"`
	EmbedCache    string             `json:"embedding_cache,omitempty"`
	EvalProtocol  string             `json:"eval_protocol"`
	HeadActivated bool               `json:"activated,omitempty"`
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

	all, err := eval.ScanFolders(*imagesDir)
	if err != nil {
		return exitFailure, err
	}
	images := eval.WithMinImages(all, max(1, *minImages))
	if len(images) == 0 {
		return exitFailure, fmt.Errorf("dataset %s: %w: no person folder with %d or more images", *imagesDir, finetune.ErrNotEnoughData, max(1, *minImages))
	}
	abs, _ := filepath.Abs(*imagesDir)
	if *cachePath == "" {
		*cachePath = userCacheFile("embed", abs, fmt.Sprint(*unfreeze))
	}
	examples, err := trainEmbed(ctx, images, *models, *unfreeze, *cachePath, logger)
	if err != nil {
		return exitFailure, err
	}
	rep := trainReport{Images: len(images), Loss: loss.String(), Unfreeze: *unfreeze, EmbedCache: *cachePath}
	if loss == finetune.LossTriplet {
		rep.Mining = mining.String()
	}

	// People-disjoint split: the evaluation people are never trained on.
	byPerson := map[string][]finetune.Example{}
	for _, ex := range examples {
		if ex.Err != "" {
			rep.NoFace++
			continue
		}
		byPerson[ex.Person] = append(byPerson[ex.Person], ex)
	}
	var people []string
	for p, exs := range byPerson {
		if len(exs) >= max(2, *minImages) {
			people = append(people, p)
		}
	}
	sort.Strings(people)
	rep.People = len(people)
	r := rand.New(rand.NewSource(*seed))
	r.Shuffle(len(people), func(i, j int) { people[i], people[j] = people[j], people[i] })
	nEval := int(*holdout*float64(len(people)) + 0.5)
	if nEval < 4 || len(people)-nEval < 2 {
		return exitFailure, fmt.Errorf("%d people with %d or more usable images: too few to train on some and evaluate on 4 others", len(people), max(2, *minImages))
	}
	evalPeople, trainPeople := people[:nEval], people[nEval:]
	sort.Strings(trainPeople)
	rep.TrainPeople, rep.EvalPeople = len(trainPeople), len(evalPeople)
	var x [][]float32
	var labels []int
	for i, p := range trainPeople {
		for _, ex := range byPerson[p] {
			if *unfreeze {
				x = append(x, ex.Feat)
			} else {
				x = append(x, ex.Raw)
			}
			labels = append(labels, i)
		}
	}

	to := finetune.TrainerOptions{Loss: loss, Margin: *margin, Squared: *squared, Mining: mining, Optimizer: opt,
		LearningRate: *lr, Layers: *layers, Threads: 2, Unfreeze: *unfreeze}
	if *unfreeze {
		if to.Weights, err = infer.LoadWeights(*models); err != nil {
			return exitStartup, err
		}
	}
	if *ckpt == "" {
		*ckpt = userCacheFile("train", abs, fmt.Sprint(to.Loss, to.Mining, to.Margin, to.Squared, to.Optimizer, to.LearningRate, to.Layers, to.Unfreeze,
			*epochs, *batchPeople, *batchPer, *batchPairs, *holdout, *seed, *minImages))
	}
	if *fresh {
		os.Remove(*ckpt)
	}
	rep.Checkpoint = *ckpt
	bar := newProgressBar("training", *epochs*max(1, stepsPerEpoch(loss, labels, *batchPeople, *batchPairs)))
	start := time.Now()
	tr, st, err := finetune.TrainOffline(ctx, x, labels, finetune.OfflineOptions{
		Trainer: to, Epochs: *epochs, BatchPeople: *batchPeople, BatchPerPerson: *batchPer, BatchPairs: *batchPairs,
		Seed: *seed, Checkpoint: *ckpt, CheckpointEvery: *every, Resume: true,
		OnStep: func(p finetune.OfflineProgress) {
			if p.Resumed {
				logger.Info("resumed from checkpoint", "step", p.Step-1, "file", *ckpt)
				bar.Add(p.Step - 1)
			}
			bar.Add(1)
		},
	})
	bar.Finish()
	if err != nil {
		if tr != nil {
			tr.Close()
		}
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(os.Stderr, "interrupted: checkpoint saved in %s; run the same command again to resume\n", *ckpt)
			return exitFailure, nil
		}
		return exitFailure, err
	}
	defer tr.Close()
	took := time.Since(start)
	rep.Steps, rep.ResumedAt, rep.FinalLoss = st.TotalSteps, st.ResumedAt, st.LastLoss
	rep.TrainSeconds = took.Seconds()
	if st.Steps > 0 {
		rep.MsPerStep = float64(took.Milliseconds()) / float64(st.Steps)
	}

	// Evaluation on the held-out people: half enrolled (the first 3 images,
	// fewer when they have fewer than 4), the rest of their images probes;
	// the other half strangers. Frozen = the backbone as shipped, identity head.
	rep.EvalProtocol = "people never trained on: half enrolled with their first min(3, n-1) images (the rest are probes), half strangers"
	frozenEmbed := func(exs []finetune.Example) ([][]float32, error) {
		out := make([][]float32, len(exs))
		for i, ex := range exs {
			out[i] = head.Identity().Project(ex.Raw)
		}
		return out, nil
	}
	trainedEmbed := func(exs []finetune.Example) ([][]float32, error) {
		var flat []float32
		for _, ex := range exs {
			if *unfreeze {
				flat = append(flat, ex.Feat...)
			} else {
				flat = append(flat, ex.Raw...)
			}
		}
		return tr.Embed(flat)
	}
	frozen, err := evalHeldOut(evalPeople, byPerson, frozenEmbed)
	if err != nil {
		return exitFailure, err
	}
	trained, err := evalHeldOut(evalPeople, byPerson, trainedEmbed)
	if err != nil {
		return exitFailure, err
	}
	rep.Frozen, rep.Trained = &frozen, &trained
	dec := finetune.Decide(frozen, trained, 0)
	rep.Gain, rep.Better = dec.Gain, dec.Activate

	h, err := tr.Head()
	if err != nil {
		return exitFailure, err
	}
	if *out != "" {
		b, err := h.Marshal()
		if err != nil {
			return exitFailure, err
		}
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			return exitFailure, err
		}
		rep.Out = *out
	}
	if *outBackbone != "" {
		ps, err := tr.TailParams()
		if err != nil {
			return exitFailure, err
		}
		if err := finetune.SaveParams(*outBackbone, ps); err != nil {
			return exitFailure, err
		}
		rep.OutBackbone = *outBackbone
	}
	if storeHead {
		id, err := storeTrainedHead(sf, h, rep, trained, frozen, *activate)
		if err != nil {
			return exitFailure, err
		}
		rep.HeadVersion, rep.HeadActivated = id, *activate
	}
	if *asJSON {
		return exitOK, json.NewEncoder(os.Stdout).Encode(rep)
	}
	printTrainReport(rep, dec)
	return exitOK, nil
}

func stepsPerEpoch(loss finetune.Loss, labels []int, people, pairs int) int {
	counts := map[int]int{}
	for _, l := range labels {
		counts[l]++
	}
	if loss == finetune.LossTriplet {
		return (len(counts) + people - 1) / people
	}
	pos := 0
	for _, n := range counts {
		pos += n * (n - 1) / 2
	}
	return (4*pos + pairs - 1) / pairs
}

// userCacheFile names a file in the user cache directory after the parts.
func userCacheFile(kind string, parts ...string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return filepath.Join(dir, "edged", kind+"-"+hex.EncodeToString(h.Sum(nil))[:16]+".bin")
}

// trainEmbed detects and embeds every image once (cached).
func trainEmbed(ctx context.Context, images []finetune.Image, models string, features bool, cache string, logger *slog.Logger) ([]finetune.Example, error) {
	do := detect.DefaultOptions(models)
	do.Logger = logger
	det, err := detect.New(do)
	if err != nil {
		return nil, err
	}
	defer det.Close()
	w, err := infer.LoadWeights(models)
	if err != nil {
		return nil, err
	}
	ex, err := finetune.NewExtractor(w, 0)
	if err != nil {
		return nil, err
	}
	defer ex.Close()
	bar := newProgressBar("embedding", len(images))
	defer bar.Finish()
	last := 0
	return finetune.EmbedImages(ctx, images, finetune.EmbedOptions{
		Detect: det.DetectFile, Extractor: ex, Features: features, CachePath: cache,
		Progress: func(done, _ int) { bar.Add(done - last); last = done },
	})
}

// evalHeldOut measures the held-out people: every other one is enrolled
// (template from the first min(3, n-1) images, the rest probes), the
// others are strangers.
func evalHeldOut(people []string, byPerson map[string][]finetune.Example, embed func([]finetune.Example) ([][]float32, error)) (finetune.Metrics, error) {
	var templates, probes, strangers [][]float32
	var probeLabels, strangerLabels []int
	for i, p := range people {
		vs, err := embed(byPerson[p])
		if err != nil {
			return finetune.Metrics{}, err
		}
		if i%2 == 1 {
			for _, v := range vs {
				strangers = append(strangers, v)
				strangerLabels = append(strangerLabels, i)
			}
			continue
		}
		k := min(3, len(vs)-1)
		templates = append(templates, finetune.MeanTemplate(vs[:k]))
		for _, v := range vs[k:] {
			probes = append(probes, v)
			probeLabels = append(probeLabels, len(templates)-1)
		}
	}
	return finetune.Evaluate(templates, probes, probeLabels, strangers, strangerLabels)
}

func storeTrainedHead(sf *storeCLIFlags, h *head.Head, rep trainReport, trained, frozen finetune.Metrics, activate bool) (string, error) {
	st, _, err := sf.open(false)
	if err != nil {
		return "", err
	}
	defer st.Close()
	b, err := h.Marshal()
	if err != nil {
		return "", err
	}
	metrics := trained.Map()
	for k, v := range frozen.Map() {
		metrics["before_"+k] = v
	}
	// edged train runs the dlib ResNet (its last stage can be unfrozen).
	hv := store.HeadVersion{Weights: b, Metrics: metrics, Active: activate, Backbone: infer.BackboneDlib,
		Note: fmt.Sprintf("edged train: %s%s loss on %d people (%d steps), evaluated on %d others", rep.Loss,
			map[bool]string{true: "/" + rep.Mining, false: ""}[rep.Mining != ""], rep.TrainPeople, rep.Steps, rep.EvalPeople)}
	if err := st.Update(func(tx *store.Tx) error { return tx.SaveHead(&hv) }); err != nil {
		return "", err
	}
	return hv.ID, nil
}

func printTrainReport(rep trainReport, dec finetune.Decision) {
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
