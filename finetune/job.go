package finetune

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"sort"
	"sync"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/store"
)

// JobOptions configure the on-device fine-tune job. Zero fields take the
// documented defaults.
type JobOptions struct {
	// Backbone is the id of the backbone whose stored vectors the job
	// trains on (store.BackboneOf: "" reads as dlib); vectors of another
	// backbone, waiting to be re-embedded, are left out, and the head it
	// stores records it. Trainer.Dim must be that backbone's dimension.
	Backbone string
	// Space is the backbone's embedding space: the guard measures with a
	// real gallery of that space (its fitted threshold included), and the
	// contrastive margin defaults to its impostor distance. Default: the
	// registered backbone's (infer.Lookup(Backbone).Space).
	Space gallery.Space
	// IgnoreExperience leaves the store's experience faces out (training
	// and guard): the job then trains on the enrollment samples alone.
	IgnoreExperience bool
	// ExperienceAnchorDecay is the Trainer's AnchorDecay when the store
	// has experience and Trainer.AnchorDecay is not set: the pull toward
	// the identity that keeps the head from moving strangers (fitted on
	// half of the LFW dev fold's people with --degrade night: 0.01 let
	// more held-out strangers in, 0.03 and 0.05 did not; 1e-3, the
	// Trainer's default, let 10-20% in). Default 0.03.
	ExperienceAnchorDecay float64
	// Trainer configures the model and the loss. Default: a one-layer
	// (linear) head from the identity, contrastive loss (margin: the
	// larger of 1 and the Space's impostor distance, 1.39 for
	// MobileFaceNet: a margin below the distance strangers already have
	// pushes nothing apart and lets the head contract the space), Adam with learning
	// rate 1e-2 (not the Trainer's 1e-3: the job's data is small and the
	// generalising solution, found on synthetic people with nuisance
	// dimensions, needs the larger steps), one TF thread.
	Trainer TrainerOptions
	// Epochs is the number of passes over the training pairs (rebuilt each
	// epoch with fresh negatives). Default 50.
	Epochs int
	// BatchPairs is the number of pairs per step (contrastive). Default 256.
	BatchPairs int
	// BatchPeople and BatchPerPerson shape the P x K batches of the triplet
	// loss. Defaults 16 and 4.
	BatchPeople, BatchPerPerson int
	// MaxSteps caps the optimiser steps of each training of a job (a job
	// trains Folds+1 times). Default 3000.
	MaxSteps int
	// Pairs sets the positive:negative ratio (default 1:3).
	Pairs PairOptions
	// Holdout is the fraction of each enrolled person's samples the guard
	// holds out as known probes (rounded, at least 1 for anyone with 2
	// samples or more, never all of them). Default 0.25.
	Holdout float64
	// Folds is the number of guard folds over people. In each fold one
	// group of people is held out entirely (not trained on, not enrolled:
	// the strangers the gallery must keep out) and the head is trained on
	// the others, so every person is a stranger once and the guard measures
	// how the recipe generalises to new identities, not only to new photos
	// of the trained ones. Default 3 (capped at the number of people).
	Folds int
	// Tolerance is how much worse a guarded metric may get and still pass.
	// Default 0 (not worse at all); negative values are treated as 0.
	Tolerance float64
	// Debounce is the quiet time after the last Trigger before a job
	// starts, so several enrollments in a row start one job. Default 30s.
	Debounce time.Duration
	// Seed makes the split, the pairs and the batches reproducible.
	// Default: time-based.
	Seed int64
	// IgnoreUnknowns leaves the store's unknown-face clusters out of
	// training. By default every unknown-N cluster (faces of a stranger
	// the cameras saw) is a stranger of the training set: its faces appear
	// only in negative pairs against enrolled samples (or as extra
	// negatives in triplet batches), so the head learns to keep the people
	// who actually walk past away from the enrolled ones. The guard holds
	// out 1/Folds of the clusters in each fold as extra stranger probes.
	IgnoreUnknowns bool
	// UnknownMaxAge leaves out the unknown-face clusters not seen for this
	// long: expired identities (gallery.UnknownOptions.MaxAge, the config
	// key recognition.unknown_ttl) are not trained on even before they are
	// pruned from the store. Default 30 days (gallery.DefaultUnknownMaxAge);
	// negative: every cluster.
	UnknownMaxAge time.Duration
	// IgnoreNegatives leaves "not X" feedback samples out of training. By
	// default each one is a stranger of the training set and a hard
	// negative pair with every training sample of X, each epoch.
	IgnoreNegatives bool
	// StrangerShare is the share of the negative pairs (contrastive) that
	// pair an enrolled sample with a stranger when there are strangers;
	// the ratio of positives to negatives stays Pairs'. Default 0.5;
	// negative values mean 0 (strangers only through hard pairs).
	StrangerShare float64
	// KeepRejected stores rejected heads too (inactive, with metrics and
	// the reason), for inspection with `edged model list`.
	KeepRejected bool
	// OnProgress receives progress reports (from the job's goroutine; keep
	// it quick). The daemon publishes them on events/finetune.
	OnProgress func(Progress)
	// OnStart is called by Run as it starts a job, with the job's id (the
	// one RunNow returned, or a new one after triggers). Run only.
	OnStart func(id string)
	// OnResult receives each finished job's result (Run only).
	OnResult func(Result)
	// OnError receives the error of a job Run ran: a failure, or the
	// context's error when Run's context ended during the job (nothing of
	// it is stored). Run only.
	OnError func(error)
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// DefaultEpochs is JobOptions.Epochs when it is not set.
const DefaultEpochs = 50

// DefaultExperienceAnchorDecay is JobOptions.ExperienceAnchorDecay when it
// is not set.
const DefaultExperienceAnchorDecay = 0.03

func (o JobOptions) withDefaults() JobOptions {
	if o.UnknownMaxAge == 0 {
		o.UnknownMaxAge = 30 * 24 * time.Hour // gallery.DefaultUnknownMaxAge
	}
	if o.Epochs <= 0 {
		o.Epochs = DefaultEpochs
	}
	if o.Space.ImpostorMean == 0 {
		if bb, err := infer.Lookup(store.BackboneOf(o.Backbone)); err == nil {
			o.Space = bb.Space
		} else {
			o.Space = gallery.DlibSpace
		}
	}
	if o.ExperienceAnchorDecay == 0 {
		o.ExperienceAnchorDecay = DefaultExperienceAnchorDecay
	}
	if o.Trainer.Margin == 0 && o.Trainer.Loss == LossContrastive {
		o.Trainer.Margin = max(1, o.Space.ImpostorMean)
	}
	if o.Trainer.LearningRate == 0 && o.Trainer.Optimizer == Adam {
		o.Trainer.LearningRate = 1e-2
	}
	if o.BatchPairs <= 0 {
		o.BatchPairs = 256
	}
	if o.BatchPeople <= 0 {
		o.BatchPeople = 16
	}
	if o.BatchPerPerson <= 0 {
		o.BatchPerPerson = 4
	}
	if o.MaxSteps <= 0 {
		o.MaxSteps = 3000
	}
	if o.Holdout <= 0 || o.Holdout >= 1 {
		o.Holdout = 0.25
	}
	if o.Folds < 2 {
		o.Folds = 3
	}
	switch {
	case o.StrangerShare == 0:
		o.StrangerShare = 0.5
	case o.StrangerShare < 0:
		o.StrangerShare = 0
	case o.StrangerShare > 1:
		o.StrangerShare = 1
	}
	if o.Tolerance < 0 {
		o.Tolerance = 0
	}
	if o.Debounce <= 0 {
		o.Debounce = 30 * time.Second
	}
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Phases of a job, in Progress.Phase.
const (
	PhaseLoad     = "load"     // reading samples from the store
	PhaseTrain    = "train"    // optimiser steps
	PhaseEvaluate = "evaluate" // guard measurements
	PhaseDone     = "done"     // finished (see Result)
)

// Progress is one progress report.
type Progress struct {
	Phase string `json:"phase"`
	// Round counts the trainings of a job: one per guard fold, then the
	// final one on every sample (Round == Rounds).
	Round   int           `json:"round,omitempty"`
	Rounds  int           `json:"rounds,omitempty"`
	Step    int           `json:"step"`
	Steps   int           `json:"steps"`
	Epoch   int           `json:"epoch"`
	Epochs  int           `json:"epochs"`
	Loss    float64       `json:"loss"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Result is the outcome of one fine-tune job.
type Result struct {
	// Activated is true when the new head passed the guard, was stored and
	// is now the active head (and the gallery re-projected).
	Activated bool `json:"activated"`
	// Skipped is true when the job did not train: not enough data.
	Skipped bool `json:"skipped,omitempty"`
	// HeadID is the stored version (activated, or rejected with KeepRejected).
	HeadID string `json:"head_id,omitempty"`
	// Reason explains the decision with the metric changes.
	Reason string `json:"reason"`
	// The guard's metrics, averaged over the folds (zero when skipped),
	// each measured with the same real gallery of the fold's training
	// samples and only the network and experience differing, so that each
	// gain has its source: Frozen is the frozen network without the
	// experience; Experienced the frozen network with the experience in
	// the gallery (no new head); Before the head active before the job
	// with the experience (= Experienced when none was active); After the
	// fine-tuned candidate with the experience.
	Frozen      Metrics `json:"frozen"`
	Experienced Metrics `json:"experienced"`
	Before      Metrics `json:"before"`
	After       Metrics `json:"after"`
	// DistanceScale is the candidate's distance scale (stored with the
	// head as metric distance_scale; gallery.DistanceScaler).
	DistanceScale float64 `json:"distance_scale,omitempty"`
	// Experience counts the experience faces the job saw.
	Experience int `json:"experience"`
	// Gain is after - before for each guarded metric.
	Gain map[string]float64 `json:"gain,omitempty"`
	// What the job saw.
	People  int `json:"people"`
	Samples int `json:"samples"`
	// Unknowns and UnknownFaces count the unknown-face clusters and their
	// faces, Negatives the "not X" samples, that were used as strangers.
	Unknowns     int `json:"unknowns"`
	UnknownFaces int `json:"unknown_faces"`
	Negatives    int `json:"negatives"`
	Folds        int `json:"folds"`    // guard folds (each holds out 1/Folds of the people)
	HeldOut      int `json:"held_out"` // known probes over all folds
	Steps        int `json:"steps"`    // optimiser steps over all trainings
	// FinalLoss is the mean loss of the final training's last epoch.
	FinalLoss float64       `json:"final_loss"`
	Duration  time.Duration `json:"duration_ns"`
	// Head is the candidate trained on every sample (activated or not; nil
	// when skipped), e.g. for measuring what a rejected head would have done.
	Head *head.Head `json:"-"`
}

// Guard returns the guard's verdict in the form `edged eval fewshot
// --finetune` reports: "activated" or "rejected: <reason>".
func (r Result) Guard() string {
	if r.Activated {
		return "activated"
	}
	return "rejected: " + r.Reason
}

// Projectable is what the job needs from the gallery: switching every
// vector to a new projection at once (matching never sees a half-updated
// gallery). *gallery.Gallery satisfies it through GalleryProjector.
type Projectable interface {
	SetHead(h *head.Head) error
}

// Job fine-tunes the head on the raw embeddings in the store, guards the
// result and activates it. Trigger, RunNow and Run are safe for concurrent
// use; RunOnce calls are serialised.
type Job struct {
	st   *store.Store
	g    Projectable
	opts JobOptions

	trigger chan struct{}
	wake    chan struct{} // RunNow: a request is pending
	mu      sync.Mutex    // one job at a time
	runs    int64

	// shuffleLabels trains on randomly permuted person labels: a
	// deliberately harmful update that proves the guard. Only tests set it.
	shuffleLabels bool

	stateMu sync.Mutex
	serving bool        // Run is running
	current string      // id of the job Run runs, "" when idle
	pending *runRequest // asked for by RunNow, not started yet
}

// runRequest is a job RunNow asked for.
type runRequest struct {
	id     string
	adjust func(*JobOptions)
}

// NewJob returns a job over the store and the gallery (g may be nil: no
// re-projection, e.g. in offline evaluations that rebuild their gallery).
func NewJob(st *store.Store, g Projectable, opts JobOptions) *Job {
	return &Job{st: st, g: g, opts: opts.withDefaults(), trigger: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
}

// Trigger asks for a fine-tune after the debounce time. It never blocks;
// triggers that arrive while one is pending or a job runs coalesce into one
// more job.
func (j *Job) Trigger() {
	select {
	case j.trigger <- struct{}{}:
	default:
	}
}

// RunNow asks Run for a job now, without the debounce; adjust (may be nil)
// changes the options of that job only (a loss or a number of epochs asked
// for by a command). It returns the job's id, ErrBusy while Run runs a job
// or another one is asked for, or ErrNotRunning when Run is not running.
// Triggers pending at that time are served by the same job.
func (j *Job) RunNow(adjust func(*JobOptions)) (string, error) {
	j.stateMu.Lock()
	switch {
	case !j.serving:
		j.stateMu.Unlock()
		return "", ErrNotRunning
	case j.current != "":
		id := j.current
		j.stateMu.Unlock()
		return "", fmt.Errorf("%w: job %s", ErrBusy, id)
	case j.pending != nil:
		id := j.pending.id
		j.stateMu.Unlock()
		return "", fmt.Errorf("%w: job %s is starting", ErrBusy, id)
	}
	req := &runRequest{id: store.NewID(), adjust: adjust}
	j.pending = req
	j.stateMu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return req.id, nil
}

// Run is the background worker: it waits for triggers, waits until no new
// trigger arrived for Debounce, runs one job, and repeats until ctx ends; a
// job asked for with RunNow starts at once. Jobs run one at a time.
// Cancelling ctx stops a running job between two steps; nothing is stored
// for it (a head is committed only after the guard, in one transaction).
// Run returns nil when ctx ends.
func (j *Job) Run(ctx context.Context) error {
	j.stateMu.Lock()
	j.serving = true
	j.stateMu.Unlock()
	defer func() {
		j.stateMu.Lock()
		j.serving, j.pending = false, nil
		j.stateMu.Unlock()
	}()
	for {
		woke := false
		select {
		case <-ctx.Done():
			return nil
		case <-j.wake:
			woke = true
		case <-j.trigger:
			if !j.debounce(ctx) {
				return nil
			}
		}
		j.runNext(ctx, woke)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// debounce waits until no trigger arrived for Debounce (or RunNow asks for
// a job); false when ctx ended.
func (j *Job) debounce(ctx context.Context) bool {
	timer := time.NewTimer(j.opts.Debounce)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-j.trigger:
			timer.Reset(j.opts.Debounce)
		case <-j.wake:
			return true
		case <-timer.C:
			return true
		}
	}
}

// runNext runs the job RunNow asked for, or else (unless woke: a wake-up
// whose request an earlier job already served) a new one after triggers,
// and reports it through the hooks.
func (j *Job) runNext(ctx context.Context, woke bool) {
	j.stateMu.Lock()
	req := j.pending
	j.pending = nil
	if req == nil && woke {
		j.stateMu.Unlock()
		return
	}
	if req == nil {
		req = &runRequest{id: store.NewID()}
	}
	j.current = req.id
	j.stateMu.Unlock()
	defer func() {
		j.stateMu.Lock()
		j.current = ""
		j.stateMu.Unlock()
	}()
	log := j.opts.Logger.With("job", req.id)
	log.Info("fine-tune started")
	if j.opts.OnStart != nil {
		j.opts.OnStart(req.id)
	}
	res, err := j.runOnce(ctx, req.adjust)
	switch {
	case ctx.Err() != nil:
		log.Info("fine-tune cancelled", "err", err)
		if j.opts.OnError != nil {
			j.opts.OnError(ctx.Err())
		}
	case err != nil:
		log.Error("fine-tune failed", "err", err)
		if j.opts.OnError != nil {
			j.opts.OnError(err)
		}
	default:
		log.Info("fine-tune finished", "activated", res.Activated, "skipped", res.Skipped, "reason", res.Reason,
			"duration", res.Duration.Round(time.Millisecond), "head", res.HeadID)
		if j.opts.OnResult != nil {
			j.opts.OnResult(res)
		}
	}
}

// people is the store's samples, grouped by person (sorted by person id),
// and the strangers the device knows about.
type people struct {
	ids  []string
	vecs [][][]float32
	// unknowns are the faces of each unknown-face cluster (by number).
	unknowns [][][]float32
	// negatives are "not X" samples; person indexes ids (-1: X has no
	// samples left, the face is still a stranger).
	negatives []negativeSample
	// exp are each person's experience faces (by track).
	exp [][]expSample
}

type negativeSample struct {
	person int
	vec    []float32
}

func (p *people) unknownFaces() int {
	n := 0
	for _, v := range p.unknowns {
		n += len(v)
	}
	return n
}

func (p *people) samples() int {
	n := 0
	for _, v := range p.vecs {
		n += len(v)
	}
	return n
}

// dim is the backbone's dimension.
func (j *Job) dim() int {
	if j.opts.Trainer.Dim > 0 {
		return j.opts.Trainer.Dim
	}
	return head.Dim
}

// ours reports whether a stored vector is of the job's backbone (and of
// its dimension, a second guard): others wait to be re-embedded.
func (j *Job) ours(backbone string, v []float32) bool {
	return store.BackboneOf(backbone) == store.BackboneOf(j.opts.Backbone) && len(v) == j.dim()
}

// loadPeople reads every person's raw embeddings from the store.
func (j *Job) loadPeople() (*people, error) {
	byPerson := map[string][][]float32{}
	err := j.st.View(func(tx *store.Tx) error {
		return tx.EachSample(func(s store.Sample) error {
			if j.ours(s.Backbone, s.Embedding) {
				byPerson[s.PersonID] = append(byPerson[s.PersonID], s.Embedding)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read samples: %w", err)
	}
	p := &people{}
	for id := range byPerson {
		p.ids = append(p.ids, id)
	}
	sort.Strings(p.ids)
	index := map[string]int{}
	for i, id := range p.ids {
		p.vecs = append(p.vecs, byPerson[id])
		index[id] = i
	}
	err = j.st.View(func(tx *store.Tx) error {
		if !j.opts.IgnoreUnknowns {
			us, err := tx.Unknowns()
			if err != nil {
				return fmt.Errorf("unknown faces: %w", err)
			}
			for _, u := range us {
				seen := u.LastSeen
				if seen.IsZero() {
					seen = u.FirstSeen
				}
				if j.opts.UnknownMaxAge > 0 && !seen.IsZero() && time.Since(seen) > j.opts.UnknownMaxAge {
					continue // expired: waiting to be pruned
				}
				var faces [][]float32
				for _, s := range u.Samples {
					if j.ours(s.Backbone, s.Embedding) {
						faces = append(faces, s.Embedding)
					}
				}
				if len(faces) > 0 {
					p.unknowns = append(p.unknowns, faces)
				}
			}
		}
		if j.opts.IgnoreNegatives {
			return nil
		}
		return tx.EachNegative(func(n store.Negative) error {
			if !j.ours(n.Backbone, n.Embedding) {
				return nil
			}
			person, ok := index[n.PersonID]
			if !ok {
				person = -1
			}
			p.negatives = append(p.negatives, negativeSample{person: person, vec: n.Embedding})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read strangers: %w", err)
	}
	return p, nil
}

// fold is one split of the guard's cross-validation over people.
type fold struct {
	people      int // enrolled (trained) people; labels index them
	train       [][]float32
	trainLabels []int
	held        [][]float32 // known probes: held-out samples (and experience tracks) of trained people
	heldLabels  []int
	// trainExp are the experience faces trained on (and in the guard's
	// gallery as experience clusters), with their person and track.
	trainExp       [][]float32
	trainExpLabels []int
	trainExpTrack  []string
	strangers      [][]float32 // every sample of the fold's held-out people (and unknown clusters)
	strangerIDs    []int
	// extra are the strangers trained on (unknown clusters not held out,
	// "not X" samples); hard pairs extra[i] with label hardLabel[i]'s
	// training samples ("not X" feedback).
	extra     [][]float32
	hardExtra []int
	hardLabel []int
}

// trainingSet is what one training of a job sees.
type trainingSet struct {
	x        [][]float32
	labels   []int  // person labels; strangers get unique labels above the people's
	stranger []bool // x[i] is a stranger: negatives only
	hard     []Pair // "not X" sample vs each of X's samples
	// track is -1 for an enrollment sample or a stranger, else the track
	// of experience face x[i] (appendExperience); empty: no experience.
	track []int
}

// newTrainingSet appends the strangers to the enrolled training samples
// (labels already final, e.g. shuffled) and expands the hard negatives.
func newTrainingSet(x [][]float32, labels []int, extra [][]float32, hardExtra, hardLabel []int) trainingSet {
	ts := trainingSet{x: append([][]float32(nil), x...), labels: append([]int(nil), labels...), stranger: make([]bool, len(x), len(x)+len(extra))}
	next := 0
	for _, l := range labels {
		next = max(next, l+1)
	}
	byLabel := map[int][]int{}
	for i, l := range labels {
		byLabel[l] = append(byLabel[l], i)
	}
	for i, v := range extra {
		ts.x = append(ts.x, v)
		ts.labels = append(ts.labels, next+i)
		ts.stranger = append(ts.stranger, true)
	}
	for k, e := range hardExtra {
		for _, i := range byLabel[hardLabel[k]] {
			ts.hard = append(ts.hard, Pair{A: len(x) + e, B: i, Y: 1})
		}
	}
	return ts
}

// makeFolds splits the people into k groups; fold f holds group f out
// entirely (its people are the strangers: never trained on, not in the
// gallery) and holds out Holdout of every other person's samples as known
// probes (at least 1 for anyone with 2 samples or more, never all). Every
// person is a stranger in exactly one fold.
func (j *Job) makeFolds(p *people, r *rand.Rand) ([]fold, error) {
	n := len(p.ids)
	if n < 3 {
		return nil, fmt.Errorf("%w: %d people with samples, the guard needs 3 or more (some are held out as strangers)", ErrNotEnoughData, n)
	}
	k := min(j.opts.Folds, n)
	order := r.Perm(n)
	group := make([]int, n)
	for pos, person := range order {
		group[person] = pos % k
	}
	// The same held-out samples in every fold: one draw per person.
	heldOut := make([]map[int]bool, n)
	for i, vs := range p.vecs {
		heldOut[i] = map[int]bool{}
		if len(vs) >= 2 {
			h := max(1, min(len(vs)-1, int(j.opts.Holdout*float64(len(vs))+0.5)))
			for _, idx := range r.Perm(len(vs))[:h] {
				heldOut[i][idx] = true
			}
		}
	}
	heldExp := make([]map[int]bool, n)
	for i := range p.vecs {
		if i < len(p.exp) {
			heldExp[i] = splitTracks(p.exp[i], j.opts.Holdout, r)
		}
	}
	folds := make([]fold, k)
	for f := range folds {
		fd := &folds[f]
		strangerNo := 0
		for i, vs := range p.vecs {
			var xs []expSample
			if i < len(p.exp) {
				xs = p.exp[i]
			}
			if group[i] == f {
				for _, v := range vs {
					fd.strangers = append(fd.strangers, v)
					fd.strangerIDs = append(fd.strangerIDs, strangerNo)
				}
				for _, x := range xs {
					fd.strangers = append(fd.strangers, x.vec)
					fd.strangerIDs = append(fd.strangerIDs, strangerNo)
				}
				strangerNo++
				continue
			}
			label := fd.people
			fd.people++
			for idx, v := range vs {
				if heldOut[i][idx] {
					fd.held = append(fd.held, v)
					fd.heldLabels = append(fd.heldLabels, label)
				} else {
					fd.train = append(fd.train, v)
					fd.trainLabels = append(fd.trainLabels, label)
				}
			}
			for idx, x := range xs {
				if heldExp[i][idx] {
					fd.held = append(fd.held, x.vec)
					fd.heldLabels = append(fd.heldLabels, label)
				} else {
					fd.trainExp = append(fd.trainExp, x.vec)
					fd.trainExpLabels = append(fd.trainExpLabels, label)
					fd.trainExpTrack = append(fd.trainExpTrack, x.track)
				}
			}
		}
		if err := fd.check(); err != nil {
			return nil, err
		}
	}
	// Unknown clusters: fold f holds group f out as stranger probes (never
	// trained on in that fold) and trains on the others. With device
	// experience they are never probes: the held-out people's experience
	// frames are in-domain strangers whose identity is certain, while an
	// unknown cluster may be an enrolled person's track the frozen network
	// did not recognise (on the LFW dev fold, the one "stranger" a good
	// head let in was such a cluster, matched to its own person); they are
	// still trained on as negatives, and calibrate the fold's gallery.
	ugroup := make([]int, len(p.unknowns))
	for pos, u := range r.Perm(len(p.unknowns)) {
		ugroup[u] = pos % k
		if p.hasExperience() {
			ugroup[u] = -1
		}
	}
	for f := range folds {
		fd := &folds[f]
		strangerNo := 0
		for _, id := range fd.strangerIDs {
			strangerNo = max(strangerNo, id+1)
		}
		labelOf := map[int]int{} // person index -> the fold's label
		label := 0
		for i := range p.vecs {
			if group[i] != f {
				labelOf[i] = label
				label++
			}
		}
		for u, faces := range p.unknowns {
			if ugroup[u] == f {
				for _, v := range faces {
					fd.strangers = append(fd.strangers, v)
					fd.strangerIDs = append(fd.strangerIDs, strangerNo)
				}
				strangerNo++
			} else {
				fd.extra = append(fd.extra, faces...)
			}
		}
		for _, n := range p.negatives {
			if l, ok := labelOf[n.person]; ok {
				fd.hardExtra = append(fd.hardExtra, len(fd.extra))
				fd.hardLabel = append(fd.hardLabel, l)
			}
			fd.extra = append(fd.extra, n.vec)
		}
	}
	return folds, nil
}

// check reports why a fold cannot support training and the guard.
func (fd *fold) check() error {
	perPerson := map[int]int{} // training samples and experience faces: a pair needs 2
	for _, l := range fd.trainLabels {
		perPerson[l]++
	}
	for _, l := range fd.trainExpLabels {
		perPerson[l]++
	}
	twoPlus := 0
	for _, c := range perPerson {
		if c >= 2 {
			twoPlus++
		}
	}
	switch {
	case len(fd.held) == 0:
		return fmt.Errorf("%w: nobody has 2 samples or 2 experience tracks or more, nothing to hold out for the guard", ErrNotEnoughData)
	case twoPlus == 0:
		return fmt.Errorf("%w: after holding out samples for the guard nobody has 2 training samples (need 3 samples per person, or experience)", ErrNotEnoughData)
	}
	return nil
}

// evaluate measures the fold's held-out probes and strangers in h's space:
// verification and unseen-people figures against templates built from its
// enrollment training samples (Evaluate), then the open-set figures as the
// daemon decides them, with a real gallery holding the fold's training
// samples and experience, its threshold fitted in h's space (scale: h's
// distance scale; galleryMetrics). withExperience false leaves the
// experience out of the gallery (what the frozen network without any
// experience would do).
func (fd *fold) evaluate(h *head.Head, scale float64, space gallery.Space, withExperience bool) (Metrics, error) {
	m, err := fd.evaluateTemplates(h)
	if err != nil {
		return m, err
	}
	g := *fd
	if !withExperience {
		g.trainExp, g.trainExpLabels = nil, nil
	}
	var p gallery.Projector
	if h != nil {
		p = scaledHead{h, scale}
	}
	return m, g.galleryMetrics(space, p, &m)
}

// evaluateTemplates projects the fold with h and measures its held-out
// probes and strangers against templates built from its training samples.
func (fd *fold) evaluateTemplates(h *head.Head) (Metrics, error) {
	if h == nil {
		h = identityOf(fd)
	}
	groups := make([][][]float32, fd.people)
	for i, v := range fd.train {
		groups[fd.trainLabels[i]] = append(groups[fd.trainLabels[i]], h.Project(v))
	}
	templates := make([][]float32, len(groups))
	for i, g := range groups {
		templates[i] = MeanTemplate(g)
	}
	project := func(vs [][]float32) [][]float32 {
		out := make([][]float32, len(vs))
		for i, v := range vs {
			out[i] = h.Project(v)
		}
		return out
	}
	return Evaluate(templates, project(fd.held), fd.heldLabels, project(fd.strangers), fd.strangerIDs)
}

// identityOf is the identity head of the fold's dimension.
func identityOf(fd *fold) *head.Head {
	dim := head.Dim
	if len(fd.train) > 0 {
		dim = len(fd.train[0])
	}
	h, _ := head.New(dim, 1)
	return h
}

// activeHead returns the store's active head (identity when none) and its
// distance scale (1 when none was recorded).
func (j *Job) activeHead() (*head.Head, string, float64, error) {
	hv, err := j.st.ActiveHead()
	if err != nil {
		return nil, "", 1, err
	}
	if hv == nil || hv.BackboneID() != store.BackboneOf(j.opts.Backbone) {
		// None, or one trained for another backbone (it does not fit):
		// start from the identity of this backbone's dimension.
		h, err := head.New(j.dim(), 1)
		return h, "", 1, err
	}
	h, err := head.Unmarshal(hv.Weights)
	if err != nil {
		return nil, "", 1, fmt.Errorf("active head %s: %w", hv.ID, err)
	}
	scale := hv.Metrics[enroll.MetricDistanceScale]
	if scale <= 0 {
		scale = 1
	}
	return h, hv.ID, scale, nil
}

func (j *Job) progress(p Progress) {
	if j.opts.OnProgress != nil {
		j.opts.OnProgress(p)
	}
}

// RunOnce runs one fine-tune now and returns its result:
//
//  1. load every raw embedding from the store: enrollment samples, device
//     experience (by track), unknown-face clusters, "not X" negatives;
//  2. guard, by cross-validation over people (Folds): for each fold, train
//     a head with the fold's strangers, held-out samples and held-out
//     experience tracks left out, and measure on them, each with a real
//     gallery of the fold's training samples and experience (like with
//     like: the same gallery, only the head differs): the frozen network
//     without experience (Frozen), with it (Experienced), the active head
//     with it (Before) and the candidate (After);
//  3. train the candidate the same way on everything;
//  4. if no guarded metric (averaged over the folds) is worse than Before,
//     nor than Experienced when a head is active, and the candidate lets
//     no more strangers in at the gallery's own threshold, store it with
//     the metrics and its distance scale and make it active in one
//     transaction, then switch the gallery to it.
//
// Not enough data is not an error: the result is Skipped with the reason.
// A cancelled ctx stops training between steps and stores nothing.
func (j *Job) RunOnce(ctx context.Context) (Result, error) { return j.runOnce(ctx, nil) }

// runOnce is RunOnce with adjust (may be nil) applied to the options of
// this job only.
func (j *Job) runOnce(ctx context.Context, adjust func(*JobOptions)) (Result, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if adjust != nil {
		saved := j.opts
		o := j.opts
		adjust(&o)
		j.opts = o.withDefaults()
		defer func() { j.opts = saved }()
	}
	start := time.Now()
	j.runs++
	r := rand.New(rand.NewSource(j.opts.Seed + j.runs - 1))
	res := Result{}
	finish := func() Result {
		res.Duration = time.Since(start)
		j.progress(Progress{Phase: PhaseDone, Elapsed: res.Duration})
		return res
	}
	j.progress(Progress{Phase: PhaseLoad})
	ppl, err := j.loadPeople()
	if err != nil {
		return res, err
	}
	if err := j.loadExperience(ppl); err != nil {
		return res, fmt.Errorf("read experience: %w", err)
	}
	res.People, res.Samples = len(ppl.ids), ppl.samples()
	res.Unknowns, res.UnknownFaces, res.Negatives = len(ppl.unknowns), ppl.unknownFaces(), len(ppl.negatives)
	for _, xs := range ppl.exp {
		res.Experience += len(xs)
	}
	folds, err := j.makeFolds(ppl, r)
	if errors.Is(err, ErrNotEnoughData) {
		res.Skipped, res.Reason = true, err.Error()
		return finish(), nil
	}
	if err != nil {
		return res, err
	}
	res.Folds = len(folds)
	current, currentID, currentScale, err := j.activeHead()
	if err != nil {
		return res, err
	}
	rounds := len(folds) + 1
	var frozen, experienced, before, after []Metrics
	for f := range folds {
		fd := &folds[f]
		res.HeldOut += len(fd.held)
		fr, err := fd.evaluate(nil, 1, j.opts.Space, false)
		if err != nil {
			return res, err
		}
		ex, err := fd.evaluate(nil, 1, j.opts.Space, true)
		if err != nil {
			return res, err
		}
		b := ex
		if currentID != "" {
			if b, err = fd.evaluate(current, currentScale, j.opts.Space, true); err != nil {
				return res, err
			}
		}
		ts := newTrainingSet(fd.train, j.labels(fd.trainLabels, r), fd.extra, fd.hardExtra, fd.hardLabel)
		ts.appendExperience(fd.trainExp, j.labels(fd.trainExpLabels, r), fd.trainExpTrack)
		cand, steps, _, err := j.train(ctx, ts, r, start, f+1, rounds)
		res.Steps += steps
		if err != nil {
			return res, err
		}
		j.progress(Progress{Phase: PhaseEvaluate, Round: f + 1, Rounds: rounds, Elapsed: time.Since(start)})
		scale := distanceScale(cand, ts.x, ts.labels, r)
		a, err := fd.evaluate(cand, scale, j.opts.Space, true)
		if err != nil {
			return res, err
		}
		j.opts.Logger.Debug("guard fold", "fold", f, "people", fd.people, "probes", len(fd.held), "strangers", len(fd.strangers), "scale", scale,
			"before_dir1", b.DIRAtFAR1, "after_dir1", a.DIRAtFAR1, "before_far_thr", b.FARAtThreshold, "after_far_thr", a.FARAtThreshold,
			"before_thr", b.Threshold, "after_thr", a.Threshold, "before_dir_thr", b.DIRAtThreshold, "after_dir_thr", a.DIRAtThreshold)
		frozen, experienced = append(frozen, fr), append(experienced, ex)
		before, after = append(before, b), append(after, a)
	}
	res.Frozen, res.Experienced = meanMetrics(frozen), meanMetrics(experienced)
	res.Before, res.After = meanMetrics(before), meanMetrics(after)
	dec := Decide(res.Before, res.After, j.opts.Tolerance)
	if currentID != "" && dec.Activate {
		// A head is active: the candidate must also beat the experience
		// alone (the frozen network with the same gallery), or the gains
		// measured against the old head were the experience's.
		if d2 := Decide(res.Experienced, res.After, j.opts.Tolerance); !d2.Activate {
			dec.Activate, dec.Reason = false, d2.Reason+" (against the frozen network with the same experience)"
		}
	}
	res.Gain, res.Reason = dec.Gain, dec.Reason

	var all, extra [][]float32
	var allLabels, hardExtra, hardLabel []int
	for i, vs := range ppl.vecs {
		for _, v := range vs {
			all = append(all, v)
			allLabels = append(allLabels, i)
		}
	}
	var allExp [][]float32
	var allExpLabels []int
	var allExpTrack []string
	for i, xs := range ppl.exp {
		for _, x := range xs {
			allExp, allExpLabels, allExpTrack = append(allExp, x.vec), append(allExpLabels, i), append(allExpTrack, x.track)
		}
	}
	for _, faces := range ppl.unknowns {
		extra = append(extra, faces...)
	}
	for _, n := range ppl.negatives {
		if n.person >= 0 {
			hardExtra, hardLabel = append(hardExtra, len(extra)), append(hardLabel, n.person)
		}
		extra = append(extra, n.vec)
	}
	ts := newTrainingSet(all, j.labels(allLabels, r), extra, hardExtra, hardLabel)
	ts.appendExperience(allExp, j.labels(allExpLabels, r), allExpTrack)
	cand, steps, loss, err := j.train(ctx, ts, r, start, rounds, rounds)
	res.Steps += steps
	res.FinalLoss = loss
	if err != nil {
		return res, err
	}
	res.Head = cand
	res.DistanceScale = distanceScale(cand, ts.x, ts.labels, r)
	if err := ctx.Err(); err != nil {
		return res, err // cancelled: commit nothing
	}
	if !dec.Activate && !j.opts.KeepRejected {
		return finish(), nil
	}
	weights, err := cand.Marshal()
	if err != nil {
		return res, err
	}
	metrics := res.After.Map()
	for k, v := range res.Before.Map() {
		metrics["before_"+k] = v
	}
	for k, v := range res.Experienced.Map() {
		metrics["experienced_"+k] = v
	}
	metrics[enroll.MetricDistanceScale] = res.DistanceScale
	hv := store.HeadVersion{Weights: weights, Metrics: metrics, Active: dec.Activate, Backbone: store.BackboneOf(j.opts.Backbone),
		Note: fmt.Sprintf("on-device %s fine-tune on %d people, %d samples, %d experience faces, %d unknown clusters (%d faces), %d negatives, from %s; guard (%d-fold over people): %s",
			j.opts.Trainer.Loss, res.People, res.Samples, res.Experience, res.Unknowns, res.UnknownFaces, res.Negatives, headName(currentID), len(folds), dec.Reason)}
	if !dec.Activate {
		hv.Note = "rejected: " + hv.Note
	}
	if err := j.st.Update(func(tx *store.Tx) error { return tx.SaveHead(&hv) }); err != nil {
		return res, fmt.Errorf("store head: %w", err)
	}
	res.HeadID = hv.ID
	if dec.Activate {
		res.Activated = true
		if j.g != nil {
			if err := j.g.SetHead(cand); err != nil {
				return res, fmt.Errorf("head %s stored and active, gallery re-projection failed: %w", hv.ID, err)
			}
		}
	}
	return finish(), nil
}

// labels returns the training labels, shuffled when the test switch
// shuffleLabels asks for a deliberately harmful update.
func (j *Job) labels(l []int, r *rand.Rand) []int {
	if !j.shuffleLabels {
		return l
	}
	out := append([]int(nil), l...)
	r.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
	return out
}

// meanMetrics averages the folds' metrics (counts are summed).
func meanMetrics(ms []Metrics) Metrics {
	var out Metrics
	if len(ms) == 0 {
		return out
	}
	n := float64(len(ms))
	for _, m := range ms {
		out.Top1 += m.Top1 / n
		out.DIRAtFAR1 += m.DIRAtFAR1 / n
		out.DIRAtFAR01 += m.DIRAtFAR01 / n
		out.TARAtFAR1 += m.TARAtFAR1 / n
		out.TARAtFAR01 += m.TARAtFAR01 / n
		out.AUC += m.AUC / n
		out.OpenSetAUC += m.OpenSetAUC / n
		out.OpenSetDPrime += m.OpenSetDPrime / n
		out.UnseenTARAtFAR1 += m.UnseenTARAtFAR1 / n
		out.UnseenAUC += m.UnseenAUC / n
		out.DIRAtThreshold += m.DIRAtThreshold / n
		out.FARAtThreshold += m.FARAtThreshold / n
		out.Threshold += m.Threshold / n
		out.Probes += m.Probes
		out.Strangers += m.Strangers
		out.Impostors += m.Impostors
	}
	return out
}

func headName(id string) string {
	if id == "" {
		return "the identity head"
	}
	return "head " + id
}

// train fits a new head on the training samples.
// round/rounds number the trainings of one job for the progress reports.
func (j *Job) train(ctx context.Context, ts trainingSet, r *rand.Rand, start time.Time, round, rounds int) (*head.Head, int, float64, error) {
	to := j.opts.Trainer
	to.Unfreeze = false // the store holds raw embeddings only
	if to.AnchorDecay == 0 && ts.hasExperience() {
		to.AnchorDecay = j.opts.ExperienceAnchorDecay
	}
	tr, err := NewTrainer(nil, to)
	if err != nil {
		return nil, 0, 0, err
	}
	defer tr.Close()
	epochs := j.opts.Epochs
	var step int
	var lastEpochLoss float64
	for epoch := 0; epoch < epochs && step < j.opts.MaxSteps; epoch++ {
		batches, err := j.epochBatches(ts, r)
		if err != nil {
			return nil, step, 0, err
		}
		stepsTotal := min(j.opts.MaxSteps, epochs*len(batches))
		var sum float64
		for _, b := range batches {
			if err := ctx.Err(); err != nil {
				return nil, step, 0, err
			}
			if step >= j.opts.MaxSteps {
				break
			}
			res, err := tr.Step(b)
			if err != nil {
				return nil, step, 0, err
			}
			step++
			sum += res.Loss
			if step%10 == 0 || step == stepsTotal {
				j.progress(Progress{Phase: PhaseTrain, Round: round, Rounds: rounds, Step: step, Steps: stepsTotal,
					Epoch: epoch + 1, Epochs: epochs, Loss: res.Loss, Elapsed: time.Since(start)})
			}
		}
		lastEpochLoss = sum / float64(max(1, len(batches)))
	}
	h, err := tr.Head()
	return h, step, lastEpochLoss, err
}

// epochBatches builds one epoch of batches: balanced pairs (contrastive) or
// P x K batches (triplet). Each batch carries only the rows it uses.
// Strangers appear only as negatives: in pairs against enrolled samples, or
// (triplet) as extra rows of each batch with labels of their own, which
// the mining can only pick as negatives.
func (j *Job) epochBatches(ts trainingSet, r *rand.Rand) ([]Batch, error) {
	x, labels := ts.x, ts.labels
	if j.opts.Trainer.Loss == LossTriplet {
		var strangers []int
		knownLabels := make([]int, len(labels))
		for i, s := range ts.stranger {
			knownLabels[i] = labels[i]
			if s {
				strangers = append(strangers, i)
				knownLabels[i] = -1 - i // a person of one sample: never in a P x K group
			}
		}
		groups, err := PKBatches(knownLabels, j.opts.BatchPeople, j.opts.BatchPerPerson, r)
		if err != nil {
			return nil, err
		}
		hardOf := map[int][]int{} // enrolled sample -> its "not X" strangers
		for _, h := range ts.hard {
			hardOf[h.B] = append(hardOf[h.B], h.A)
		}
		perBatch := min(len(strangers), j.opts.BatchPeople*j.opts.BatchPerPerson/2)
		out := make([]Batch, len(groups))
		for i, g := range groups {
			rows := append([]int(nil), g...)
			in := map[int]bool{}
			for _, idx := range g {
				for _, s := range hardOf[idx] {
					if !in[s] {
						in[s] = true
						rows = append(rows, s)
					}
				}
			}
			for _, k := range r.Perm(len(strangers))[:perBatch] {
				if !in[strangers[k]] {
					in[strangers[k]] = true
					rows = append(rows, strangers[k])
				}
			}
			for _, idx := range rows {
				out[i].X = append(out[i].X, x[idx]...)
				out[i].Labels = append(out[i].Labels, int32(labels[idx]))
			}
		}
		return out, nil
	}
	if ts.hasExperience() {
		pairs, err := buildDomainPairs(x, labels, ts.track, ts.stranger, ts.hard, j.opts.StrangerShare, j.opts.Pairs, r)
		if err != nil {
			return nil, err
		}
		return PairBatches(pairs, x, j.opts.BatchPairs), nil
	}
	pairs, err := BuildOpenPairs(labels, ts.stranger, ts.hard, j.opts.StrangerShare, j.opts.Pairs, r)
	if err != nil {
		return nil, err
	}
	return PairBatches(pairs, x, j.opts.BatchPairs), nil
}
