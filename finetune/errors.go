package finetune

import "errors"

var (
	// ErrOptions is returned for invalid options (a margin <= 0, an unknown
	// mining or loss name, a batch that cannot be formed).
	ErrOptions = errors.New("invalid fine-tune options")
	// ErrNotEnoughData is returned when the samples cannot support training
	// or the guard's held-out evaluation (too few people, or nobody with
	// two samples or more).
	ErrNotEnoughData = errors.New("not enough samples to fine-tune")
	// ErrClosed is returned by a closed Trainer or Job.
	ErrClosed = errors.New("fine-tune closed")
	// ErrBusy is returned by Job.RunNow while a job runs or another one is
	// asked for.
	ErrBusy = errors.New("a fine-tune job is running")
	// ErrNotRunning is returned by Job.RunNow when Job.Run is not running.
	ErrNotRunning = errors.New("fine-tuning is not running")
	// ErrCheckpoint is returned when a checkpoint cannot be read or does not
	// match the model being trained.
	ErrCheckpoint = errors.New("bad checkpoint")
)
