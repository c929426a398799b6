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

// Finetune is an eval.FewShotFinetune: the seen strangers first
// (run.SeeStrangers), then one fine-tune job on run.Store.
func Finetune(ctx context.Context, run *eval.FewShotRun) (eval.FewShotResult, string, error) {
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
	job := finetune.NewJob(run.Store, storeActiveHead{run}, finetune.JobOptions{Backbone: run.Backbone.ID, Trainer: finetune.TrainerOptions{Dim: run.Backbone.Dim}, Logger: run.Logger, Seed: int64(run.Shots)})
	res, err := job.RunOnce(ctx)
	if err != nil {
		return eval.FewShotResult{}, "", err
	}
	run.Logger.Info("fine-tune", "shots", run.Shots, "guard", res.Guard(), "steps", res.Steps, "took", res.Duration,
		"unknowns", res.Unknowns, "unknown_faces", res.UnknownFaces, "negatives", res.Negatives)
	if !res.Activated && res.Head != nil {
		// Measure the rejected candidate on the same gallery, then put the
		// frozen matching space back (the daemon would not have switched).
		if err := run.Gallery.SetProjector(res.Head); err != nil {
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

var (
	_ finetune.Projectable = storeActiveHead{}
	_ eval.FewShotFinetune = Finetune
)
