package finetune

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/edged-dev/edged/internal/procmem"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/infer"
)

// reportMemory adds VmHWM (peak resident set, process-wide: run one
// sub-benchmark per process for a per-size peak), RssAnon and RssFile, in MB.
func reportMemory(b *testing.B) {
	m, err := procmem.Read()
	if err != nil {
		return
	}
	for name, v := range m.BenchMetrics() {
		b.ReportMetric(v, name)
	}
}

// BenchmarkFinetuneJob is the on-device job (3 guard folds + the final
// training, default options: contrastive, Adam, one TF thread) on galleries
// of synthetic people with 5 samples each. Run with -benchtime 1x.
func BenchmarkFinetuneJob(b *testing.B) {
	for _, people := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("people=%d", people), func(b *testing.B) {
			st := newTestStore(b)
			x, labels := synthPeople(rand.New(rand.NewSource(1)), people, 5, 0.6)
			fillStore(b, st, x, labels)
			runtime.GC()
			b.ResetTimer()
			var steps int
			for i := 0; i < b.N; i++ {
				res, err := NewJob(st, nil, JobOptions{Seed: int64(i + 1)}).RunOnce(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				steps += res.Steps
				if i == 0 {
					b.Logf("%d people: %s; %d steps in %v", people, res.Guard(), res.Steps, res.Duration)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(steps)/float64(b.N), "steps/job")
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/job")
			reportMemory(b)
		})
	}
}

// BenchmarkHeadStep is one contrastive step of the head on raw embeddings
// (256 pairs, 1:3), the unit of work of the on-device job.
func BenchmarkHeadStep(b *testing.B) {
	r := rand.New(rand.NewSource(2))
	x, labels := synthPeople(r, 64, 4, 0.6)
	tr, err := NewTrainer(nil, TrainerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	batch := pairBatch(b, x, labels, r)
	batch.A, batch.B, batch.Y = batch.A[:256], batch.B[:256], batch.Y[:256]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tr.Step(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportMemory(b)
}

func benchWeights(b *testing.B) *infer.Weights {
	b.Helper()
	dir := os.Getenv("EDGED_MODELS")
	if dir == "" {
		dir = filepath.Join("..", ".deps", "models")
	}
	w, err := infer.LoadWeights(dir)
	if err != nil {
		b.Skipf("backbone weights not available (make setup): %v", err)
	}
	return w
}

// BenchmarkUnfreezeStep is one triplet step (batch-hard) of `edged train
// --unfreeze`: the head plus the backbone's last residual stage and FC,
// on P x 4 chips whose frozen features (conv256_2 output) are cached, as
// edged train does. The frozen part's cost per chip is BenchmarkExtract.
func BenchmarkUnfreezeStep(b *testing.B) {
	w := benchWeights(b)
	for _, chips := range []int{32, 128} {
		b.Run(fmt.Sprintf("chips=%d", chips), func(b *testing.B) {
			tr, err := NewTrainer(nil, TrainerOptions{Loss: LossTriplet, Mining: BatchHard, Unfreeze: true, Weights: w,
				Threads: runtime.NumCPU()})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			r := rand.New(rand.NewSource(3))
			var batch Batch
			for i := 0; i < chips; i++ {
				for j := 0; j < tr.RowLen(); j++ {
					batch.X = append(batch.X, float32(math.Abs(r.NormFloat64()))) // post-ReLU features
				}
				batch.Labels = append(batch.Labels, int32(i/4))
			}
			if _, err := tr.Step(batch); err != nil { // warm-up
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := tr.Step(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
			reportMemory(b)
		})
	}
}

// BenchmarkExtract is the frozen backbone forward pass of edged train's
// first epoch (raw embedding and conv256_2 features), per 32 chips.
func BenchmarkExtract(b *testing.B) {
	w := benchWeights(b)
	ex, err := NewExtractor(w, runtime.NumCPU())
	if err != nil {
		b.Fatal(err)
	}
	defer ex.Close()
	r := rand.New(rand.NewSource(4))
	chips := make([]face.Chip, 32)
	for i := range chips {
		pix := make([]uint8, face.ChipSize*face.ChipSize*3)
		r.Read(pix)
		chips[i] = face.Chip{Pix: pix}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := ex.Extract(chips, true); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/32, "ms/chip")
	reportMemory(b)
}
