package finetune

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestOfflineResumeMatchesUninterrupted interrupts a run mid-epoch (the
// cancellation writes a checkpoint), resumes it, and expects exactly the
// head an uninterrupted run gives: same batches, same optimiser state.
func TestOfflineResumeMatchesUninterrupted(t *testing.T) {
	for _, loss := range []Loss{LossContrastive, LossTriplet} {
		t.Run(loss.String(), func(t *testing.T) {
			x, labels := synthPeople(rand.New(rand.NewSource(21)), 10, 4, 0.8)
			o := OfflineOptions{Trainer: TrainerOptions{Loss: loss, Mining: SemiHard}, Epochs: 4, Seed: 5,
				BatchPairs: 64, BatchPeople: 4, BatchPerPerson: 4, CheckpointEvery: 3}
			ref, st, err := TrainOffline(context.Background(), x, labels, o)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			want, _ := ref.Head()
			if st.StepsInEpoch < 2 {
				t.Fatalf("%d steps per epoch: too few to interrupt mid-epoch", st.StepsInEpoch)
			}

			o.Checkpoint = filepath.Join(t.TempDir(), "train.ckpt")
			o.Resume = true
			stopAt := st.StepsInEpoch + st.StepsInEpoch/2 + 1 // inside epoch 2, not on a checkpoint boundary
			ctx, cancel := context.WithCancel(context.Background())
			o1 := o
			o1.OnStep = func(p OfflineProgress) {
				if p.Step == stopAt {
					cancel()
				}
			}
			tr, _, err := TrainOffline(ctx, x, labels, o1)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted run: err %v", err)
			}
			tr.Close()
			var resumedFrom int
			o.OnStep = func(p OfflineProgress) {
				if p.Resumed {
					resumedFrom = p.Step
				}
			}
			tr, st2, err := TrainOffline(context.Background(), x, labels, o)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if st2.ResumedAt != stopAt || resumedFrom != stopAt+1 {
				t.Fatalf("resumed at %d (first step %d), want %d", st2.ResumedAt, resumedFrom, stopAt)
			}
			got, _ := tr.Head()
			if d := maxDiff(flatten(headRows(got)), flatten(headRows(want))); d != 0 {
				t.Fatalf("resumed run differs from the uninterrupted one by %g", d)
			}
		})
	}
}

func headRows(h interface{ Project([]float32) []float32 }) [][]float32 {
	x, _ := synthPeople(rand.New(rand.NewSource(99)), 2, 2, 0.5)
	out := make([][]float32, len(x))
	for i, v := range x {
		out[i] = h.Project(v)
	}
	return out
}

func TestCheckpointRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	tr, err := NewTrainer(nil, TrainerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	good := filepath.Join(dir, "good.ckpt")
	if err := tr.SaveCheckpoint(good, map[string]int64{"epoch": 3}); err != nil {
		t.Fatal(err)
	}
	meta, err := tr.LoadCheckpoint(good)
	if err != nil || meta["epoch"] != 3 {
		t.Fatalf("round trip: %v %v", meta, err)
	}
	b, _ := os.ReadFile(good)
	flipped := append([]byte(nil), b...)
	flipped[len(flipped)/2] ^= 1
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other, err := NewTrainer(nil, TrainerOptions{Layers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherPath := filepath.Join(dir, "other.ckpt")
	if err := other.SaveCheckpoint(otherPath, nil); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"missing":     filepath.Join(dir, "none.ckpt"),
		"truncated":   write("trunc.ckpt", b[:len(b)-40]),
		"bit flip":    write("flip.ckpt", flipped),
		"garbage":     write("garbage.ckpt", []byte("not a checkpoint at all, but long enough for a hash....")),
		"other model": otherPath,
	} {
		if _, err := tr.LoadCheckpoint(path); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("%s: err %v, want ErrCheckpoint", name, err)
		}
	}
}
