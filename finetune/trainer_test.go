package finetune

import (
	"errors"
	"math"
	"math/rand"
	"testing"

	"github.com/edged-dev/edged/head"
)

// synthPeople returns k samples of each of p people in 128-d: identity lives
// in the first 16 dimensions, the other 112 carry person-independent
// nuisance noise that dominates the raw distance, so the identity head is
// mediocre and a trained linear head can do much better.
func synthPeople(r *rand.Rand, p, k int, nuisance float64) (x [][]float32, labels []int) {
	for i := 0; i < p; i++ {
		centre := make([]float64, 16)
		for d := range centre {
			centre[d] = r.NormFloat64()
		}
		for j := 0; j < k; j++ {
			v := make([]float32, head.Dim)
			for d := range v {
				if d < 16 {
					v[d] = float32(centre[d] + 0.25*r.NormFloat64())
				} else {
					v[d] = float32(nuisance * r.NormFloat64())
				}
			}
			x = append(x, v)
			labels = append(labels, i)
		}
	}
	return x, labels
}

func flatten(x [][]float32) []float32 {
	var out []float32
	for _, v := range x {
		out = append(out, v...)
	}
	return out
}

func pairBatch(t testing.TB, x [][]float32, labels []int, r *rand.Rand) Batch {
	t.Helper()
	pairs, err := BuildPairs(labels, PairOptions{}, r)
	if err != nil {
		t.Fatal(err)
	}
	b := Batch{X: flatten(x)}
	for _, p := range pairs {
		b.A = append(b.A, int32(p.A))
		b.B = append(b.B, int32(p.B))
		b.Y = append(b.Y, p.Y)
	}
	return b
}

func TestTrainerStartsAtInitHead(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	init := trainedHead(t, r, 2)
	tr, err := NewTrainer(init, TrainerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	got, err := tr.Head()
	if err != nil {
		t.Fatal(err)
	}
	x, _ := synthPeople(r, 3, 2, 0.3)
	emb, err := tr.Embed(flatten(x))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range x {
		want := init.Project(v)
		if d := maxDiff(got.Project(v), want); d != 0 {
			t.Fatalf("Head() differs from the init head by %g", d)
		}
		if d := maxDiff(emb[i], want); d > 1e-5 {
			t.Fatalf("graph head differs from head.Project by %g", d)
		}
	}
}

// trainedHead returns a non-identity head (every parameter perturbed), so
// tests notice variables that alias or are mis-assigned.
func trainedHead(t testing.TB, r *rand.Rand, layers int) *head.Head {
	t.Helper()
	h, _ := head.New(head.Dim, layers)
	ls := h.Layers()
	for i := range ls {
		for j := range ls[i].W {
			ls[i].W[j] += 0.05 * float32(r.NormFloat64())
		}
		for j := range ls[i].B {
			ls[i].B[j] = 0.02 * float32(r.NormFloat64())
		}
		for j := range ls[i].Alpha {
			ls[i].Alpha[j] = 0.3 + 0.5*r.Float32()
		}
	}
	out, err := head.FromLayers(head.Dim, ls)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func maxDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestMomentumStepIsGradientStep checks the optimiser ops: the first
// momentum step moves a weight by -lr * dL/dw, with dL/dw from finite
// differences of the loss over separately built trainers.
func TestMomentumStepIsGradientStep(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	x, labels := synthPeople(r, 4, 3, 0.3)
	b := pairBatch(t, x, labels, r)
	init := trainedHead(t, r, 1)
	const lr = 0.5
	opts := TrainerOptions{Optimizer: Momentum, LearningRate: lr, AnchorDecay: -1}
	lossAt := func(h *head.Head) float64 {
		tr, err := NewTrainer(h, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		res, err := tr.Step(b)
		if err != nil {
			t.Fatal(err)
		}
		return res.Loss
	}
	tr, err := NewTrainer(init, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Step(b); err != nil {
		t.Fatal(err)
	}
	after, _ := tr.Head()
	ls0, ls1 := init.Layers(), after.Layers()
	// The entries with the largest updates: their gradients are well above
	// float32 finite-difference noise.
	for _, idx := range largest(ls0[0].W, ls1[0].W, 3) {
		const h = 2e-3
		perturb := func(delta float32) *head.Head {
			ls := init.Layers()
			ls[0].W[idx] += delta
			out, err := head.FromLayers(head.Dim, ls)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		numeric := (lossAt(perturb(h)) - lossAt(perturb(-h))) / (2 * h)
		step := float64(ls1[0].W[idx] - ls0[0].W[idx])
		if got := -step / lr; math.Abs(got-numeric) > 0.05*math.Abs(numeric)+1e-4 {
			t.Errorf("W[%d]: update/-lr = %v, finite-difference gradient %v", idx, got, numeric)
		}
	}
}

func largest(a, b []float32, n int) []int {
	var idx []int
	for k := 0; k < n; k++ {
		best := -1
		for i := range a {
			skip := false
			for _, j := range idx {
				skip = skip || i == j
			}
			if !skip && (best < 0 || math.Abs(float64(b[i]-a[i])) > math.Abs(float64(b[best]-a[best]))) {
				best = i
			}
		}
		idx = append(idx, best)
	}
	return idx
}

// TestTrainerLearns trains on synthetic people whose raw distances are
// dominated by nuisance noise: both losses must cut their loss and make
// same-person distances smaller than different-person ones more often.
func TestTrainerLearns(t *testing.T) {
	for _, c := range []struct {
		name string
		opts TrainerOptions
	}{
		{"contrastive adam", TrainerOptions{Loss: LossContrastive, LearningRate: 3e-3}},
		{"contrastive 2 layers", TrainerOptions{Loss: LossContrastive, Layers: 2, LearningRate: 3e-3}},
		{"triplet batch-hard", TrainerOptions{Loss: LossTriplet, Mining: BatchHard, LearningRate: 3e-3}},
		{"triplet semi-hard momentum", TrainerOptions{Loss: LossTriplet, Mining: SemiHard, Optimizer: Momentum, LearningRate: 0.05}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(3))
			x, labels := synthPeople(r, 12, 4, 1.0)
			tr, err := NewTrainer(nil, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			before := separation(t, tr, x, labels)
			var first, last float64
			for step := 0; step < 60; step++ {
				var b Batch
				if c.opts.Loss == LossContrastive {
					b = pairBatch(t, x, labels, r)
				} else {
					batches, err := PKBatches(labels, 6, 4, r)
					if err != nil {
						t.Fatal(err)
					}
					for _, i := range batches[0] {
						b.X = append(b.X, x[i]...)
						b.Labels = append(b.Labels, int32(labels[i]))
					}
				}
				res, err := tr.Step(b)
				if err != nil {
					t.Fatal(err)
				}
				if step == 0 {
					first = res.Loss
				}
				last = res.Loss
			}
			after := separation(t, tr, x, labels)
			t.Logf("loss %.4f -> %.4f, pair ranking accuracy %.3f -> %.3f", first, last, before, after)
			if !(last < first) || !(after > before) {
				t.Fatalf("did not learn: loss %.4f -> %.4f, ranking %.3f -> %.3f", first, last, before, after)
			}
		})
	}
}

// separation is the fraction of (same-person, different-person) distance
// pairs that are ordered right (the AUC of verification).
func separation(t *testing.T, tr *Trainer, x [][]float32, labels []int) float64 {
	t.Helper()
	emb, err := tr.Embed(flatten(x))
	if err != nil {
		t.Fatal(err)
	}
	var same, diff []float64
	for i := range emb {
		for j := i + 1; j < len(emb); j++ {
			var d float64
			for k := range emb[i] {
				d += float64((emb[i][k] - emb[j][k]) * (emb[i][k] - emb[j][k]))
			}
			if labels[i] == labels[j] {
				same = append(same, d)
			} else {
				diff = append(diff, d)
			}
		}
	}
	var ok float64
	for _, s := range same {
		for _, d := range diff {
			if s < d {
				ok++
			}
		}
	}
	return ok / float64(len(same)*len(diff))
}

func TestTrainerBadInput(t *testing.T) {
	tr, err := NewTrainer(nil, TrainerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 3*head.Dim)
	for _, b := range []Batch{
		{X: x[:100], A: []int32{0}, B: []int32{1}, Y: []float32{0}},
		{X: x, A: []int32{0}, B: []int32{1, 2}, Y: []float32{0}},
		{X: x, A: []int32{0}, B: []int32{3}, Y: []float32{0}},
		{X: x},
	} {
		if _, err := tr.Step(b); !errors.Is(err, ErrOptions) {
			t.Errorf("bad batch: err %v, want ErrOptions", err)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := tr.Step(Batch{X: x}); !errors.Is(err, ErrClosed) {
		t.Errorf("Step after Close: %v", err)
	}
	for _, o := range []TrainerOptions{{Loss: Loss(7)}, {Margin: -1}, {Layers: 9}, {Unfreeze: true}, {LearningRate: -1}} {
		if _, err := NewTrainer(nil, o); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: err %v, want ErrOptions", o, err)
		}
	}
}
