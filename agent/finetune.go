package agent

// finetune.go connects the on-device fine-tune (finetune.Job) to the
// daemon: enrollments trigger it (debounced), the MQTT finetune command
// asks for a job now, the job's Run runs them one at a time, and each job's
// start, progress and result are published on events/finetune and counted
// in edged_finetune_runs_total.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/finetune"
	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/internal/metrics"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/service"
	"github.com/edged-dev/edged/store"
)

// finetuner is the service's Finetuner over one finetune.Job.
type finetuner struct {
	job  *finetune.Job
	st   *store.Store
	log  *slog.Logger
	runs *metrics.CounterVec

	// observe also gets every fine-tune event (the web page's progress);
	// nil: none. Set before Run.
	observe func(mqtt.Payload)

	mu      sync.Mutex
	jobID   string // the running job, "" when idle
	phase   string
	lastPub time.Time // of the job's last progress event
}

var _ service.Finetuner = (*finetuner)(nil)

// newFinetuner builds the job for the core's backbone; debounce is
// finetune.debounce (0: a job starts as soon as enrollments stop).
func newFinetuner(c *Core, debounce time.Duration, log *slog.Logger) *finetuner {
	f := &finetuner{
		st: c.st, log: log.With("component", "finetune"),
		runs: c.reg.Counter("edged_finetune_runs_total", "Fine-tune jobs by result (activated, rejected, skipped, failed).", "result"),
	}
	if debounce <= 0 {
		debounce = time.Nanosecond // the job's own 0 means its default (30s)
	}
	f.job = finetune.NewJob(c.st, activeHead{c}, finetune.JobOptions{
		Backbone: c.bb.ID, Trainer: finetune.TrainerOptions{Dim: c.bb.Dim},
		Debounce:      debounce,
		UnknownMaxAge: unknownMaxAge(c.cfg),
		OnStart:       f.started, OnProgress: f.progress, OnResult: f.finished, OnError: f.failed,
		Logger: f.log,
	})
	return f
}

// unknownMaxAge is recognition.unknown_ttl as the job takes it (a negative
// value turns the age bound off).
func unknownMaxAge(cfg config.Config) time.Duration {
	_, age := cfg.Recognition.UnknownBounds()
	if age <= 0 {
		return -1
	}
	return age
}

// Run runs the jobs until ctx ends (a running job is cancelled; nothing of
// it is stored).
func (f *finetuner) Run(ctx context.Context) { _ = f.job.Run(ctx) }

// Trigger implements service.Finetuner.
func (f *finetuner) Trigger() { f.job.Trigger() }

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
	var l finetune.Loss
	if loss != "" {
		var err error
		if l, err = finetune.ParseLoss(loss); err != nil {
			return "", 0, mqtt.Errorf(mqtt.CodeInvalidField, "loss: %v", err)
		}
	}
	planned := epochs
	if planned == 0 {
		planned = finetune.DefaultEpochs
	}
	if dryRun {
		return "dry-run-" + store.NewID(), planned, nil
	}
	id, err := f.job.RunNow(func(o *finetune.JobOptions) {
		if loss != "" {
			o.Trainer.Loss = l
		}
		if epochs > 0 {
			o.Epochs = epochs
		}
	})
	switch {
	case errors.Is(err, finetune.ErrBusy):
		f.mu.Lock()
		running := f.jobID
		f.mu.Unlock()
		if running == "" {
			return "", 0, mqtt.Errorf(mqtt.CodeConflict, "%v", err)
		}
		return "", 0, mqtt.Errorf(mqtt.CodeConflict, "fine-tune %s is already running", running)
	case errors.Is(err, finetune.ErrNotRunning):
		return "", 0, mqtt.Errorf(mqtt.CodeUnavailable, "fine-tuning is not running")
	case err != nil:
		return "", 0, err
	}
	return id, planned, nil
}

// started is the job's OnStart: the job is running, events/finetune says so.
func (f *finetuner) started(id string) {
	f.mu.Lock()
	f.jobID, f.phase, f.lastPub = id, mqtt.FinetuneStarted, time.Time{}
	f.mu.Unlock()
	f.publish(mqtt.Finetune{JobID: id, State: mqtt.FinetuneStarted, Time: mqtt.At(time.Now())})
}

// progress is the job's OnProgress: one event per epoch at most every 2 s
// (enough to show progress).
func (f *finetuner) progress(p finetune.Progress) {
	f.mu.Lock()
	f.phase = p.Phase
	id := f.jobID
	due := p.Phase == finetune.PhaseTrain && time.Since(f.lastPub) >= 2*time.Second
	if due {
		f.lastPub = time.Now()
	}
	f.mu.Unlock()
	if due {
		f.publish(progressEvent(id, p))
	}
}

// finished is the job's OnResult.
func (f *finetuner) finished(res finetune.Result) {
	id := f.done()
	ev := mqtt.Finetune{JobID: id, Progress: 1, HeadVersion: res.HeadID, Time: mqtt.At(time.Now())}
	switch {
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
	f.publish(ev)
}

// failed is the job's OnError. A job cancelled by the shutdown stored
// nothing and is not reported.
func (f *finetuner) failed(err error) {
	id := f.done()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		f.runs.With("cancelled").Inc()
		return
	}
	f.runs.With("failed").Inc()
	f.publish(mqtt.Finetune{JobID: id, Progress: 1, State: mqtt.FinetuneFailed, Message: err.Error(), Time: mqtt.At(time.Now())})
}

// done marks the job finished and returns its id.
func (f *finetuner) done() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.jobID
	f.jobID, f.phase = "", ""
	return id
}

func (f *finetuner) publish(p mqtt.Payload) {
	if f.observe != nil {
		f.observe(p)
	}
	ev, err := service.OutboxEvent("", p, time.Now())
	if err == nil {
		err = f.st.AppendEvents(ev)
	}
	if err != nil {
		f.log.Error("fine-tune event", "err", err)
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
