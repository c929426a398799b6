package finetune

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/edged-dev/edged/eval"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/store"
)

// FolderOptions configure a FolderRun (edged train).
type FolderOptions struct {
	// Images is the folder-per-person image set (DIR/<person>/*.jpg).
	Images string
	// MinImages: people with fewer images are left out.
	MinImages int
	// Models is the model directory (the backbone's weights).
	Models string
	// Trainer is the model, loss and optimiser. With Unfreeze and no
	// Weights, Train uses the backbone weights Embed loaded.
	Trainer TrainerOptions
	// Epochs, BatchPeople, BatchPerPerson, BatchPairs, Seed and
	// CheckpointEvery are TrainOffline's (OfflineOptions); Seed also
	// draws the people-disjoint split.
	Epochs, BatchPeople, BatchPerPerson, BatchPairs int
	Seed                                            int64
	CheckpointEvery                                 int
	// Holdout is the fraction of the people held out for the final
	// evaluation (never trained on).
	Holdout float64
	// Checkpoint is the checkpoint file; "" names one in the user cache
	// directory after the data and the options. Fresh removes it first.
	Checkpoint string
	Fresh      bool
	// Cache is the embedding cache file; "" names one in the user cache
	// directory after the data.
	Cache string
	// Out and OutBackbone, when set, receive the trained head and (with
	// Unfreeze) the trained backbone stage.
	Out, OutBackbone string
	// OnEmbed and OnStep report progress as (done, total): images embedded,
	// optimiser steps taken (a resumed run starts at the checkpoint's
	// step). Each is called with done 0 first.
	OnEmbed, OnStep func(done, total int)
	// Logger; default discard.
	Logger *slog.Logger
}

// FolderReport is what a FolderRun did and measured (`edged train
// --json`).
type FolderReport struct {
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
	Frozen        *Metrics           `json:"frozen,omitempty"`
	Trained       *Metrics           `json:"trained,omitempty"`
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

// FolderRun is the offline training behind `edged train`, in the order
// its steps take: NewFolderRun scans the image set, Embed detects and
// embeds every image once (cached), Train splits the people, trains with
// checkpoints (TrainOffline), evaluates on the people it held out and
// writes the head; the result can be stored as a head version.
type FolderRun struct {
	o        FolderOptions
	abs      string // the set's absolute path, for the cache file names
	images   []Image
	examples []Example
	weights  *infer.Weights // the backbone's, loaded by Embed
	log      *slog.Logger
}

// NewFolderRun scans o.Images. It fails when no person has MinImages
// images (ErrNotEnoughData).
func NewFolderRun(o FolderOptions) (*FolderRun, error) {
	all, err := eval.ScanFolders(o.Images)
	if err != nil {
		return nil, err
	}
	images := eval.WithMinImages(all, max(1, o.MinImages))
	if len(images) == 0 {
		return nil, fmt.Errorf("dataset %s: %w: no person folder with %d or more images", o.Images, ErrNotEnoughData, max(1, o.MinImages))
	}
	r := &FolderRun{o: o, images: images, log: o.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.abs, _ = filepath.Abs(o.Images)
	if r.o.Cache == "" {
		r.o.Cache = userCacheFile("embed", r.abs, fmt.Sprint(o.Trainer.Unfreeze))
	}
	return r, nil
}

// Cache is the embedding cache file.
func (r *FolderRun) Cache() string { return r.o.Cache }

// Checkpoint is the checkpoint file (known after Train starts).
func (r *FolderRun) Checkpoint() string { return r.o.Checkpoint }

// Embed detects the subject of every image with detect
// (detect.Detector.DetectFile) and embeds it with the backbone in
// o.Models (and its features, with Unfreeze), through the cache.
func (r *FolderRun) Embed(ctx context.Context, detect func(path string) ([]face.Face, error)) error {
	w, err := infer.LoadWeights(r.o.Models)
	if err != nil {
		return err
	}
	r.weights = w
	ex, err := NewExtractor(w, 0)
	if err != nil {
		return err
	}
	defer ex.Close()
	progress := r.o.OnEmbed
	if progress == nil {
		progress = func(int, int) {}
	}
	progress(0, len(r.images))
	r.examples, err = EmbedImages(ctx, r.images, EmbedOptions{
		Detect: detect, Extractor: ex, Features: r.o.Trainer.Unfreeze, CachePath: r.o.Cache,
		Progress: progress,
	})
	return err
}

// FolderResult is the outcome of FolderRun.Train.
type FolderResult struct {
	Report FolderReport
	// Decision is the guard's verdict, frozen network against trained.
	Decision Decision
	// Head is the trained head.
	Head *head.Head
}

// Train splits the embedded people (people-disjoint: the evaluation
// people are never trained on), trains, evaluates the frozen network and
// the trained head on the held-out people and writes o.Out and
// o.OutBackbone. A cancelled ctx returns ctx's error after the checkpoint
// is saved (Checkpoint): the same run resumes from it.
func (r *FolderRun) Train(ctx context.Context) (*FolderResult, error) {
	o := r.o
	minImages := o.MinImages
	rep := FolderReport{Images: len(r.images), Loss: o.Trainer.Loss.String(), Unfreeze: o.Trainer.Unfreeze, EmbedCache: o.Cache}
	if o.Trainer.Loss == LossTriplet {
		rep.Mining = o.Trainer.Mining.String()
	}

	// People-disjoint split: the evaluation people are never trained on.
	byPerson := map[string][]Example{}
	for _, ex := range r.examples {
		if ex.Err != "" {
			rep.NoFace++
			continue
		}
		byPerson[ex.Person] = append(byPerson[ex.Person], ex)
	}
	var people []string
	for p, exs := range byPerson {
		if len(exs) >= max(2, minImages) {
			people = append(people, p)
		}
	}
	sort.Strings(people)
	rep.People = len(people)
	rnd := rand.New(rand.NewSource(o.Seed))
	rnd.Shuffle(len(people), func(i, j int) { people[i], people[j] = people[j], people[i] })
	nEval := int(o.Holdout*float64(len(people)) + 0.5)
	if nEval < 4 || len(people)-nEval < 2 {
		return nil, fmt.Errorf("%d people with %d or more usable images: too few to train on some and evaluate on 4 others", len(people), max(2, minImages))
	}
	evalPeople, trainPeople := people[:nEval], people[nEval:]
	sort.Strings(trainPeople)
	rep.TrainPeople, rep.EvalPeople = len(trainPeople), len(evalPeople)
	var x [][]float32
	var labels []int
	for i, p := range trainPeople {
		for _, ex := range byPerson[p] {
			if o.Trainer.Unfreeze {
				x = append(x, ex.Feat)
			} else {
				x = append(x, ex.Raw)
			}
			labels = append(labels, i)
		}
	}

	to := o.Trainer
	if to.Unfreeze && to.Weights == nil {
		to.Weights = r.weights
	}
	if o.Checkpoint == "" {
		o.Checkpoint = userCacheFile("train", r.abs, fmt.Sprint(to.Loss, to.Mining, to.Margin, to.Squared, to.Optimizer, to.LearningRate, to.Layers, to.Unfreeze,
			o.Epochs, o.BatchPeople, o.BatchPerPerson, o.BatchPairs, o.Holdout, o.Seed, minImages))
		r.o.Checkpoint = o.Checkpoint
	}
	if o.Fresh {
		os.Remove(o.Checkpoint)
	}
	rep.Checkpoint = o.Checkpoint
	total := o.Epochs * max(1, stepsPerEpoch(to.Loss, labels, o.BatchPeople, o.BatchPairs))
	onStep := o.OnStep
	if onStep == nil {
		onStep = func(int, int) {}
	}
	onStep(0, total)
	start := time.Now()
	tr, st, err := TrainOffline(ctx, x, labels, OfflineOptions{
		Trainer: to, Epochs: o.Epochs, BatchPeople: o.BatchPeople, BatchPerPerson: o.BatchPerPerson, BatchPairs: o.BatchPairs,
		Seed: o.Seed, Checkpoint: o.Checkpoint, CheckpointEvery: o.CheckpointEvery, Resume: true,
		OnStep: func(p OfflineProgress) {
			if p.Resumed {
				r.log.Info("resumed from checkpoint", "step", p.Step-1, "file", o.Checkpoint)
			}
			onStep(p.Step, total)
		},
	})
	if err != nil {
		if tr != nil {
			tr.Close()
		}
		return nil, err
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
	frozenEmbed := func(exs []Example) ([][]float32, error) {
		out := make([][]float32, len(exs))
		for i, ex := range exs {
			out[i] = head.Identity().Project(ex.Raw)
		}
		return out, nil
	}
	trainedEmbed := func(exs []Example) ([][]float32, error) {
		var flat []float32
		for _, ex := range exs {
			if o.Trainer.Unfreeze {
				flat = append(flat, ex.Feat...)
			} else {
				flat = append(flat, ex.Raw...)
			}
		}
		return tr.Embed(flat)
	}
	frozen, err := evalHeldOut(evalPeople, byPerson, frozenEmbed)
	if err != nil {
		return nil, err
	}
	trained, err := evalHeldOut(evalPeople, byPerson, trainedEmbed)
	if err != nil {
		return nil, err
	}
	rep.Frozen, rep.Trained = &frozen, &trained
	dec := Decide(frozen, trained, 0)
	rep.Gain, rep.Better = dec.Gain, dec.Activate

	h, err := tr.Head()
	if err != nil {
		return nil, err
	}
	if o.Out != "" {
		b, err := h.Marshal()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(o.Out, b, 0o644); err != nil {
			return nil, err
		}
		rep.Out = o.Out
	}
	if o.OutBackbone != "" {
		ps, err := tr.TailParams()
		if err != nil {
			return nil, err
		}
		if err := SaveParams(o.OutBackbone, ps); err != nil {
			return nil, err
		}
		rep.OutBackbone = o.OutBackbone
	}
	return &FolderResult{Report: rep, Decision: dec, Head: h}, nil
}

// StoreHead stores the trained head as a new head version (active when
// activate) with the evaluation's metrics (the frozen network's as
// before_*), and records its id in the report.
func (res *FolderResult) StoreHead(st *store.Store, activate bool) (string, error) {
	rep := res.Report
	b, err := res.Head.Marshal()
	if err != nil {
		return "", err
	}
	metrics := rep.Trained.Map()
	for k, v := range rep.Frozen.Map() {
		metrics["before_"+k] = v
	}
	// edged train runs the dlib ResNet (its last stage can be unfrozen).
	hv := store.HeadVersion{Weights: b, Metrics: metrics, Active: activate, Backbone: infer.BackboneDlib,
		Note: fmt.Sprintf("edged train: %s%s loss on %d people (%d steps), evaluated on %d others", rep.Loss,
			map[bool]string{true: "/" + rep.Mining, false: ""}[rep.Mining != ""], rep.TrainPeople, rep.Steps, rep.EvalPeople)}
	if err := st.Update(func(tx *store.Tx) error { return tx.SaveHead(&hv) }); err != nil {
		return "", err
	}
	res.Report.HeadVersion, res.Report.HeadActivated = hv.ID, activate
	return hv.ID, nil
}

func stepsPerEpoch(loss Loss, labels []int, people, pairs int) int {
	counts := map[int]int{}
	for _, l := range labels {
		counts[l]++
	}
	if loss == LossTriplet {
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

// evalHeldOut measures the held-out people: every other one is enrolled
// (template from the first min(3, n-1) images, the rest probes), the
// others are strangers.
func evalHeldOut(people []string, byPerson map[string][]Example, embed func([]Example) ([][]float32, error)) (Metrics, error) {
	var templates, probes, strangers [][]float32
	var probeLabels, strangerLabels []int
	for i, p := range people {
		vs, err := embed(byPerson[p])
		if err != nil {
			return Metrics{}, err
		}
		if i%2 == 1 {
			for _, v := range vs {
				strangers = append(strangers, v)
				strangerLabels = append(strangerLabels, i)
			}
			continue
		}
		k := min(3, len(vs)-1)
		templates = append(templates, MeanTemplate(vs[:k]))
		for _, v := range vs[k:] {
			probes = append(probes, v)
			probeLabels = append(probeLabels, len(templates)-1)
		}
	}
	return Evaluate(templates, probes, probeLabels, strangers, strangerLabels)
}
