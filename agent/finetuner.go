package agent

// finetuner runs the on-device fine-tune in the daemon: debounced after
// enrollments, or on the finetune command, one job at a time, with its
// progress and result published on events/finetune.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/finetune"
	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/internal/metrics"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/service"
	"github.com/edged-dev/edged/store"
)

type finetuner struct {
	c        *Core
	log      *slog.Logger
	debounce time.Duration
	runs     *metrics.CounterVec

	trigger chan struct{}
	mu      sync.Mutex
	jobID   string // running job, "" when idle
	phase   string
	ctx     context.Context
	wg      sync.WaitGroup
}

var _ service.Finetuner = (*finetuner)(nil)

func newFinetuner(c *Core, debounce time.Duration, log *slog.Logger) *finetuner {
	return &finetuner{
		c: c, log: log.With("component", "finetune"), debounce: debounce,
		runs:    c.reg.Counter("edged_finetune_runs_total", "Fine-tune jobs by result (activated, rejected, skipped, failed).", "result"),
		trigger: make(chan struct{}, 1),
	}
}

// activeHead switches the gallery to the store's active head; the job
// calls it after it stored and activated a head (so the gallery always
// shows the committed head, under its version id).
type activeHead struct{ c *Core }

func (a activeHead) SetHead(*head.Head) error {
	h, err := a.c.st.ActiveHead()
	if err != nil || h == nil {
		return fmt.Errorf("active head: %v", err)
	}
	p, err := enroll.HeadProjector(h)
	if err != nil {
		return err
	}
	return a.c.g.SetProjector(p)
}

// Run waits for triggers, lets Debounce pass without a new one, runs a job,
// and repeats until ctx ends (a running job is cancelled; nothing of it is
// stored).
func (f *finetuner) Run(ctx context.Context) {
	f.mu.Lock()
	f.ctx = ctx
	f.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			f.wg.Wait()
			return
		case <-f.trigger:
		}
		timer := time.NewTimer(f.debounce)
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				f.wg.Wait()
				return
			case <-f.trigger:
				timer.Reset(f.debounce)
			case <-timer.C:
				break wait
			}
		}
		if id, err := f.start(ctx, finetune.JobOptions{}); err != nil {
			f.log.Info("fine-tune not started", "err", err)
		} else {
			f.log.Info("fine-tune started after enrollments", "job", id)
		}
	}
}

// Trigger implements service.Finetuner.
func (f *finetuner) Trigger() {
	select {
	case f.trigger <- struct{}{}:
	default:
	}
}

// State implements service.Finetuner.
func (f *finetuner) State() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.jobID == "" {
		return ""
	}
	return f.phase
}

// Start implements service.Finetuner.
func (f *finetuner) Start(_ context.Context, loss string, epochs int, dryRun bool) (string, int, error) {
	var o finetune.JobOptions
	if loss != "" {
		l, err := finetune.ParseLoss(loss)
		if err != nil {
			return "", 0, mqtt.Errorf(mqtt.CodeInvalidField, "loss: %v", err)
		}
		o.Trainer.Loss = l
	}
	o.Epochs = epochs
	planned := epochs
	if planned == 0 {
		planned = finetune.DefaultEpochs
	}
	if dryRun {
		return "dry-run-" + store.NewID(), planned, nil
	}
	f.mu.Lock()
	ctx := f.ctx
	f.mu.Unlock()
	if ctx == nil {
		return "", 0, mqtt.Errorf(mqtt.CodeUnavailable, "fine-tuning is not running")
	}
	id, err := f.start(ctx, o)
	return id, planned, err
}

// start launches one job unless one runs.
func (f *finetuner) start(ctx context.Context, o finetune.JobOptions) (string, error) {
	f.mu.Lock()
	if f.jobID != "" {
		running := f.jobID
		f.mu.Unlock()
		return "", mqtt.Errorf(mqtt.CodeConflict, "fine-tune %s is already running", running)
	}
	id := store.NewID()
	f.jobID, f.phase = id, mqtt.FinetuneStarted
	f.mu.Unlock()

	o.Debounce = time.Millisecond
	o.Backbone, o.Trainer.Dim = f.c.bb.ID, f.c.bb.Dim
	o.Logger = f.log.With("job", id)
	lastPub := time.Time{}
	o.OnProgress = func(p finetune.Progress) {
		f.mu.Lock()
		f.phase = p.Phase
		f.mu.Unlock()
		// One event per epoch at most every 2 s: enough to show progress.
		if p.Phase != finetune.PhaseTrain || time.Since(lastPub) < 2*time.Second {
			return
		}
		lastPub = time.Now()
		f.publish(progressEvent(id, p))
	}
	job := finetune.NewJob(f.c.st, activeHead{f.c}, o)
	f.publish(mqtt.Finetune{JobID: id, State: mqtt.FinetuneStarted, Time: mqtt.At(time.Now())})
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer func() {
			f.mu.Lock()
			f.jobID, f.phase = "", ""
			f.mu.Unlock()
		}()
		res, err := job.RunOnce(ctx)
		ev := mqtt.Finetune{JobID: id, Progress: 1, HeadVersion: res.HeadID, Time: mqtt.At(time.Now())}
		switch {
		case ctx.Err() != nil:
			f.runs.With("cancelled").Inc()
			return // shutting down: nothing was stored
		case err != nil:
			f.runs.With("failed").Inc()
			f.log.Error("fine-tune failed", "err", err)
			ev.State, ev.Message = mqtt.FinetuneFailed, err.Error()
		case res.Skipped:
			f.runs.With("skipped").Inc()
			ev.State, ev.Message = mqtt.FinetuneRejected, res.Reason
		case res.Activated:
			f.runs.With("activated").Inc()
			ev.State, ev.Message, ev.Metrics = mqtt.FinetuneDone, res.Reason, res.Gain
		default:
			f.runs.With("rejected").Inc()
			ev.State, ev.Message, ev.Metrics = mqtt.FinetuneRejected, res.Reason, res.Gain
		}
		f.log.Info("fine-tune finished", "job", id, "state", ev.State, "reason", res.Reason, "duration", res.Duration.Round(time.Millisecond))
		f.publish(ev)
	}()
	return id, nil
}

func (f *finetuner) publish(p mqtt.Payload) {
	ev, err := service.OutboxEvent("", p, time.Now())
	if err == nil {
		err = f.c.st.AppendEvents(ev)
	}
	if err != nil {
		f.log.Error("fine-tune event", "err", err)
	}
}

// progressEvent turns a job's progress into the finetune event. A job trains
// several times (one per guard fold, then once on everything), so the
// fraction runs over all rounds instead of restarting with each.
func progressEvent(id string, p finetune.Progress) mqtt.Finetune {
	frac := 0.0
	if p.Steps > 0 {
		frac = float64(p.Step) / float64(p.Steps)
	}
	if p.Rounds > 0 && p.Round > 0 {
		frac = (float64(p.Round-1) + frac) / float64(p.Rounds)
	}
	loss := p.Loss
	return mqtt.Finetune{JobID: id, State: mqtt.FinetuneProgress, Progress: frac, Epoch: p.Epoch, Epochs: p.Epochs, Loss: &loss, Time: mqtt.At(time.Now())}
}
