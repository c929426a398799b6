package finetune

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"

	"github.com/edged-dev/edged/head"
)

// OfflineOptions configure TrainOffline (edged train).
type OfflineOptions struct {
	// Trainer is the model, loss and optimiser.
	Trainer TrainerOptions
	// Init is the head to start from (nil: identity).
	Init *head.Head
	// Epochs over the training data. Default 20.
	Epochs int
	// BatchPeople x BatchPerPerson is the triplet batch (P x K). Defaults
	// 8 x 4 (32 chips).
	BatchPeople, BatchPerPerson int
	// BatchPairs is the contrastive batch in pairs. Default 256.
	BatchPairs int
	// Pairs sets the contrastive positive:negative ratio (default 1:3).
	Pairs PairOptions
	// Seed makes the batches reproducible; epoch e draws from Seed+e, so a
	// resumed run sees the same batches as an uninterrupted one.
	Seed int64
	// Checkpoint is the checkpoint file ("" = none). It is written every
	// CheckpointEvery steps (default 200), at the end of every epoch and
	// when ctx is cancelled.
	Checkpoint      string
	CheckpointEvery int
	// Resume continues from Checkpoint when it exists.
	Resume bool
	// OnStep is called after every step.
	OnStep func(OfflineProgress)
}

// OfflineProgress reports one step of TrainOffline.
type OfflineProgress struct {
	Step, Steps   int // global step, planned total
	Epoch, Epochs int
	Loss          float64
	Resumed       bool // the first report after a resume
}

// OfflineStats summarises a TrainOffline run.
type OfflineStats struct {
	Steps        int     // steps taken in this run
	TotalSteps   int     // including the steps before a resume
	ResumedAt    int     // global step the run resumed from (0: fresh)
	LastLoss     float64 // mean loss of the last epoch
	LastPenalty  float64
	StepsInEpoch int
}

func (o OfflineOptions) withDefaults() OfflineOptions {
	if o.Epochs <= 0 {
		o.Epochs = 20
	}
	if o.BatchPeople <= 0 {
		o.BatchPeople = 8
	}
	if o.BatchPerPerson <= 0 {
		o.BatchPerPerson = 4
	}
	if o.BatchPairs <= 0 {
		o.BatchPairs = 256
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 200
	}
	return o
}

// TrainOffline trains on x (rows of RowLen values: raw embeddings, or
// features with Trainer.Unfreeze) with person labels, epoch by epoch, with
// checkpoints and resume. It returns the trainer (the caller reads Head,
// TailParams or Embed and closes it). A cancelled ctx saves a checkpoint
// and returns ctx's error with the trainer.
func TrainOffline(ctx context.Context, x [][]float32, labels []int, o OfflineOptions) (*Trainer, OfflineStats, error) {
	o = o.withDefaults()
	var st OfflineStats
	if len(x) == 0 || len(x) != len(labels) {
		return nil, st, fmt.Errorf("%w: %d rows, %d labels", ErrNotEnoughData, len(x), len(labels))
	}
	tr, err := NewTrainer(o.Init, o.Trainer)
	if err != nil {
		return nil, st, err
	}
	for i, row := range x {
		if len(row) != tr.RowLen() {
			tr.Close()
			return nil, st, fmt.Errorf("%w: row %d has %d values, the model takes %d", ErrOptions, i, len(row), tr.RowLen())
		}
	}
	batchesOf := func(epoch int) ([]Batch, error) {
		r := rand.New(rand.NewSource(o.Seed + int64(epoch)))
		if o.Trainer.Loss == LossTriplet {
			groups, err := PKBatches(labels, o.BatchPeople, o.BatchPerPerson, r)
			if err != nil {
				return nil, err
			}
			out := make([]Batch, len(groups))
			for i, g := range groups {
				for _, idx := range g {
					out[i].X = append(out[i].X, x[idx]...)
					out[i].Labels = append(out[i].Labels, int32(labels[idx]))
				}
			}
			return out, nil
		}
		pairs, err := BuildPairs(labels, o.Pairs, r)
		if err != nil {
			return nil, err
		}
		return PairBatches(pairs, x, o.BatchPairs), nil
	}
	first, err := batchesOf(0)
	if err != nil {
		tr.Close()
		return nil, st, err
	}
	st.StepsInEpoch = len(first)
	total := o.Epochs * len(first)

	startEpoch, startBatch := 0, 0
	if o.Resume && o.Checkpoint != "" {
		if _, err := os.Stat(o.Checkpoint); err == nil {
			meta, err := tr.LoadCheckpoint(o.Checkpoint)
			if err != nil {
				tr.Close()
				return nil, st, err
			}
			startEpoch, startBatch = int(meta["epoch"]), int(meta["batch"])
			st.ResumedAt = int(tr.Steps())
		}
	}
	save := func(epoch, batch int) error {
		if o.Checkpoint == "" {
			return nil
		}
		return tr.SaveCheckpoint(o.Checkpoint, map[string]int64{"epoch": int64(epoch), "batch": int64(batch)})
	}
	resumed := st.ResumedAt > 0
	for epoch := startEpoch; epoch < o.Epochs; epoch++ {
		batches := first
		if epoch > 0 {
			if batches, err = batchesOf(epoch); err != nil {
				tr.Close()
				return nil, st, err
			}
		}
		from := 0
		if epoch == startEpoch {
			from = min(startBatch, len(batches))
		}
		var sum, pen float64
		var n int
		for b := from; b < len(batches); b++ {
			if err := ctx.Err(); err != nil {
				st.TotalSteps = int(tr.Steps())
				return tr, st, errors.Join(err, save(epoch, b))
			}
			res, err := tr.Step(batches[b])
			if err != nil {
				tr.Close()
				return nil, st, err
			}
			st.Steps++
			sum, pen, n = sum+res.Loss, pen+res.Penalty, n+1
			step := int(tr.Steps())
			if o.OnStep != nil {
				o.OnStep(OfflineProgress{Step: step, Steps: total, Epoch: epoch + 1, Epochs: o.Epochs, Loss: res.Loss, Resumed: resumed})
				resumed = false
			}
			if step%o.CheckpointEvery == 0 {
				if err := save(epoch, b+1); err != nil {
					tr.Close()
					return nil, st, fmt.Errorf("checkpoint: %w", err)
				}
			}
		}
		if n > 0 {
			st.LastLoss, st.LastPenalty = sum/float64(n), pen/float64(n)
		}
		if err := save(epoch+1, 0); err != nil {
			tr.Close()
			return nil, st, fmt.Errorf("checkpoint: %w", err)
		}
	}
	st.TotalSteps = int(tr.Steps())
	return tr, st, nil
}
