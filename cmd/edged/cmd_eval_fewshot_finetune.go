package main

import (
	"context"
	"fmt"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/eval"
	"github.com/edged-dev/edged/finetune"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/head"
)

// `edged eval fewshot --finetune`: after each shots setting's enrollments,
// run the on-device fine-tune on the throw-away store exactly as the daemon
// does (finetune.JobOptions{} defaults, the gallery switched to the stored
// active head), then score the probes again.
//
// "finetuned" holds the figures of the fine-tuned candidate head whether or
// not the guard activated it, so a rejection can be checked against what
// the head would have done; the daemon keeps the frozen figures when the
// guard says "rejected". When the job did not train at all (not enough
// samples, e.g. one shot), "finetuned" repeats the frozen figures.
func init() { fewshotFinetune = fewshotRunFinetune }

// storeActiveHead switches a gallery to the store's active head, as the
// daemon's finetuner does after a job activated one.
type storeActiveHead struct{ run *fewshotRun }

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

// seeFewshotStrangers shows the device the seen strangers' images before
// the fine-tune, the way the daemon meets strangers: each image is one
// appearance matched against the (frozen) gallery; one the gallery accepts
// as somebody would be reported as that person and is not filed, the
// others join their unknown-N cluster in the store through the enroller
// (gallery.Unknowns with its default options, so faces below its quality
// floor are dropped as the daemon drops them). It returns the number of
// images filed and accepted as somebody.
func seeFewshotStrangers(run *fewshotRun) (filed, accepted int, err error) {
	u := gallery.NewUnknowns(gallery.UnknownOptions{Space: run.Backbone.Space})
	if _, err := enroll.LoadUnknowns(run.Store, u, run.Backbone.ID); err != nil {
		return 0, 0, err
	}
	for i, im := range run.Seen {
		if im.Raw == nil {
			continue
		}
		m, err := run.Gallery.Match(im.Raw)
		if err != nil {
			return filed, accepted, err
		}
		if m.Known {
			accepted++
			continue
		}
		// One second apart: each image is its own appearance.
		at := time.Unix(int64(i), 0).UTC()
		_, _, ok, err := run.Enroller.ObserveUnknown(u, []gallery.UnknownFace{{Embedding: im.Raw, Quality: im.Quality, Time: at, Camera: "eval"}})
		if err != nil {
			return filed, accepted, err
		}
		if ok {
			filed++
		}
	}
	return filed, accepted, nil
}

func fewshotRunFinetune(ctx context.Context, run *fewshotRun) (eval.FewShotResult, string, error) {
	if len(run.Seen) > 0 {
		filed, accepted, err := seeFewshotStrangers(run)
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

var _ finetune.Projectable = storeActiveHead{}
