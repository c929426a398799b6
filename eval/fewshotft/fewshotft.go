// Package fewshotft is the fine-tune step of the few-shot harness
// (`edged eval fewshot --finetune`): after each shots setting's
// enrollments, it runs the on-device fine-tune on the throw-away store
// exactly as the daemon does (finetune.JobOptions{} defaults, the gallery
// switched to the stored active head), then scores the probes again.
//
// It is apart from package eval because package finetune links TensorFlow
// and eval stays pure Go.
//
// "finetuned" holds the figures of the fine-tuned candidate head whether or
// not the guard activated it, so a rejection can be checked against what
// the head would have done; the daemon keeps the frozen figures when the
// guard says "rejected". When the job did not train at all (not enough
// samples, e.g. one shot), "finetuned" repeats the frozen figures.
package fewshotft

import (
	"context"
	"fmt"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/eval"
	"github.com/edged-dev/edged/finetune"
	"github.com/edged-dev/edged/head"
)

// storeActiveHead switches a gallery to the store's active head, as the
// daemon's finetuner does after a job activated one.
type storeActiveHead struct{ run *eval.FewShotRun }

func (a storeActiveHead) SetHead(*head.Head) error {
	h, err := a.run.Store.ActiveHead()
	if err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("no active head after activation")
	}
	p, err := enroll.HeadProjector(h)
	if err != nil {
		return err
	}
	return a.run.Gallery.SetProjector(p)
}

// Finetune is an eval.FewShotFinetune with the job's defaults: the seen
// strangers first (run.SeeStrangers, unless the experience saw them), then
// one fine-tune job on run.Store.
func Finetune(ctx context.Context, run *eval.FewShotRun) (eval.FewShotResult, string, error) {
	return WithOptions(finetune.JobOptions{})(ctx, run)
}

// WithOptions is Finetune with job options (their Backbone, Space,
// Trainer.Dim, Logger and Seed are the run's): for fitting the defaults.
func WithOptions(o finetune.JobOptions) eval.FewShotFinetune {
	return func(ctx context.Context, run *eval.FewShotRun) (eval.FewShotResult, string, error) {
		return finetuneWith(ctx, run, o)
	}
}

func finetuneWith(ctx context.Context, run *eval.FewShotRun, o finetune.JobOptions) (eval.FewShotResult, string, error) {
	if len(run.Seen) > 0 {
		filed, accepted, err := run.SeeStrangers()
		if err != nil {
			return eval.FewShotResult{}, "", fmt.Errorf("seen strangers: %w", err)
		}
		us, err := run.Store.Unknowns()
		if err != nil {
			return eval.FewShotResult{}, "", err
		}
		run.Logger.Info("seen strangers", "shots", run.Shots, "images", len(run.Seen), "filed", filed,
			"accepted_as_somebody", accepted, "unknown_clusters", len(us))
	}
	o.Backbone, o.Space, o.Trainer.Dim, o.Logger, o.Seed = run.Backbone.ID, run.Backbone.Space, run.Backbone.Dim, run.Logger, int64(run.Shots)
	job := finetune.NewJob(run.Store, storeActiveHead{run}, o)
	res, err := job.RunOnce(ctx)
	if err != nil {
		return eval.FewShotResult{}, "", err
	}
	run.Logger.Info("fine-tune", "shots", run.Shots, "guard", res.Guard(), "steps", res.Steps, "took", res.Duration,
		"experience", res.Experience, "unknowns", res.Unknowns, "unknown_faces", res.UnknownFaces, "negatives", res.Negatives,
		"distance_scale", res.DistanceScale)
	for _, m := range []struct {
		name string
		m    finetune.Metrics
	}{{"frozen", res.Frozen}, {"experienced", res.Experienced}, {"before", res.Before}, {"after", res.After}} {
		run.Logger.Info("guard folds", "shots", run.Shots, "what", m.name, "dir_at_far_0.01", m.m.DIRAtFAR1, "dir_at_far_0.001", m.m.DIRAtFAR01,
			"dir_at_threshold", m.m.DIRAtThreshold, "far_at_threshold", m.m.FARAtThreshold, "top1", m.m.Top1, "unseen_auc", m.m.UnseenAUC, "open_set_dprime", m.m.OpenSetDPrime,
			"probes", m.m.Probes, "strangers", m.m.Strangers)
	}
	if !res.Activated && res.Head != nil {
		// Measure the rejected candidate on the same gallery (calibrated
		// with its distance scale, as it would have been), then put the
		// frozen matching space back (the daemon would not have switched).
		if err := run.Gallery.SetProjector(scaled{res.Head, res.DistanceScale}); err != nil {
			return eval.FewShotResult{}, "", err
		}
		defer run.Gallery.SetProjector(nil)
	}
	ft, _, err := run.Score(run.Gallery)
	if err != nil {
		return eval.FewShotResult{}, "", err
	}
	return ft, res.Guard(), nil
}

// scaled is a candidate head with its distance scale.
type scaled struct {
	*head.Head
	scale float64
}

func (s scaled) DistanceScale() float64 { return s.scale }

var (
	_ finetune.Projectable = storeActiveHead{}
	_ eval.FewShotFinetune = Finetune
)
