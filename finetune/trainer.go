package finetune

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/internal/tfconfig"
)

// Loss names the training objective.
type Loss int

const (
	// LossContrastive trains on pairs (Batch.A, Batch.B, Batch.Y).
	LossContrastive Loss = iota
	// LossTriplet trains on P x K batches (Batch.Labels) with online mining.
	LossTriplet
)

func (l Loss) String() string {
	switch l {
	case LossContrastive:
		return "contrastive"
	case LossTriplet:
		return "triplet"
	}
	return fmt.Sprintf("Loss(%d)", int(l))
}

// ParseLoss parses "contrastive" or "triplet".
func ParseLoss(s string) (Loss, error) {
	switch strings.ToLower(s) {
	case "contrastive":
		return LossContrastive, nil
	case "triplet":
		return LossTriplet, nil
	}
	return 0, fmt.Errorf("%w: loss %q (want contrastive or triplet)", ErrOptions, s)
}

// Optimizer names the update rule.
type Optimizer int

const (
	// Adam (Kingma & Ba), with TensorFlow's ResourceApplyAdam.
	Adam Optimizer = iota
	// Momentum is SGD with momentum (ResourceApplyMomentum).
	Momentum
)

func (o Optimizer) String() string {
	if o == Momentum {
		return "momentum"
	}
	return "adam"
}

// The last backbone stages --unfreeze trains: the final residual block and
// the FC layer after it. Everything before is frozen and can be computed
// once per chip (infer.BuildStages from UnfreezeFrom's input).
const (
	// UnfreezeFrom is the first trainable backbone stage.
	UnfreezeFrom = "conv256_down_out"
	// UnfreezeInputStage is the frozen stage whose output feeds UnfreezeFrom.
	UnfreezeInputStage = "conv256_2"
)

// UnfreezeFeatureShape is the per-chip shape of the features an unfrozen
// trainer takes: the output of UnfreezeInputStage.
var UnfreezeFeatureShape = []int64{4, 4, 256}

// TrainerOptions configure a Trainer. The zero value is valid for a
// contrastive head-only trainer; zero fields take the documented defaults.
type TrainerOptions struct {
	// Loss is the objective. Default contrastive.
	Loss Loss
	// Margin is m of the contrastive loss (default 1.0: on unit vectors
	// different people end up at least 1 apart, same-person distances are
	// typically 0.3-0.6) or alpha of the triplet loss (default 0.2).
	Margin float64
	// Squared selects squared distances for the triplet loss.
	Squared bool
	// Mining picks triplets (triplet loss only). Zero value: BatchAll.
	Mining Mining
	// Optimizer is the update rule. Default Adam.
	Optimizer Optimizer
	// LearningRate, default 1e-3 (Adam) or 1e-2 (momentum).
	LearningRate float64
	// MomentumCoef is the momentum of Momentum. Default 0.9.
	MomentumCoef float64
	// Beta1, Beta2, Epsilon of Adam. Defaults 0.9, 0.999, 1e-8.
	Beta1, Beta2, Epsilon float64
	// AnchorDecay weighs an L2 penalty sum((p - p0)^2) that pulls every
	// trainable parameter toward its initial value (L2-SP): the head starts
	// at the identity and few-shot data must earn every departure from it.
	// Default 1e-3; negative disables.
	AnchorDecay float64
	// Layers is the depth of a fresh head (when NewTrainer gets a nil init
	// head): 1 or 2. Default 1.
	Layers int
	// Threads caps TensorFlow's intra-op threads of this trainer's own
	// session (use_per_session_threads, so it does not resize the
	// embedder's pools). Default 1: fine-tuning must not stall recognition.
	Threads int
	// Dim is the raw embedding's dimension, the backbone's
	// (infer.Backbone.Dim: 192 for mobilefacenet, 128 for dlib). Default
	// 128. A fresh head is Dim x Dim; an init head must match it.
	Dim int
	// Unfreeze also trains the backbone's last residual stage and FC layer
	// (UnfreezeFrom .. fc); the trainer then takes UnfreezeInputStage
	// features [N,4,4,256] instead of raw embeddings. Needs Weights.
	Unfreeze bool
	// Weights are the backbone's weights (Unfreeze only).
	Weights *infer.Weights
}

func (o TrainerOptions) withDefaults() (TrainerOptions, error) {
	if o.Loss != LossContrastive && o.Loss != LossTriplet {
		return o, fmt.Errorf("%w: unknown loss %v", ErrOptions, o.Loss)
	}
	if o.Margin == 0 {
		o.Margin = 1.0
		if o.Loss == LossTriplet {
			o.Margin = 0.2
		}
	}
	if o.Margin < 0 || math.IsNaN(o.Margin) {
		return o, fmt.Errorf("%w: margin %v", ErrOptions, o.Margin)
	}
	if o.Optimizer != Adam && o.Optimizer != Momentum {
		return o, fmt.Errorf("%w: unknown optimizer %v", ErrOptions, o.Optimizer)
	}
	if o.LearningRate == 0 {
		o.LearningRate = 1e-3
		if o.Optimizer == Momentum {
			o.LearningRate = 1e-2
		}
	}
	if o.LearningRate < 0 {
		return o, fmt.Errorf("%w: learning rate %v", ErrOptions, o.LearningRate)
	}
	if o.MomentumCoef == 0 {
		o.MomentumCoef = 0.9
	}
	if o.Beta1 == 0 {
		o.Beta1 = 0.9
	}
	if o.Beta2 == 0 {
		o.Beta2 = 0.999
	}
	if o.Epsilon == 0 {
		o.Epsilon = 1e-8
	}
	if o.AnchorDecay == 0 {
		o.AnchorDecay = 1e-3
	}
	if o.Dim == 0 {
		o.Dim = head.Dim
	}
	if o.Unfreeze && o.Dim != infer.EmbeddingSize {
		return o, fmt.Errorf("%w: unfreezing the last stage is only possible for the dlib ResNet (dimension %d), not a %d-d backbone", ErrOptions, infer.EmbeddingSize, o.Dim)
	}
	if o.Layers == 0 {
		o.Layers = 1
	}
	if o.Layers < 1 || o.Layers > head.MaxLayers {
		return o, fmt.Errorf("%w: %d head layers", ErrOptions, o.Layers)
	}
	if o.Threads <= 0 {
		o.Threads = 1
	}
	if o.Unfreeze && o.Weights == nil {
		return o, fmt.Errorf("%w: unfreeze needs the backbone weights", ErrOptions)
	}
	return o, nil
}

// Batch is one training step's data. X holds N input rows, flat row-major:
// raw embeddings (N*128 values) or, for an unfrozen trainer, features
// (N*4*4*256 values).
type Batch struct {
	X []float32
	// Labels[i] is row i's person (triplet loss).
	Labels []int32
	// A, B, Y are the pairs (contrastive loss): rows A[j] and B[j] of X,
	// Y[j] = 0 same person, 1 different.
	A, B []int32
	Y    []float32
}

// StepResult reports one step.
type StepResult struct {
	Loss    float64 // the metric loss (without the anchor penalty)
	Penalty float64 // the anchor penalty
	Active  float64 // triplet loss: selected triplets with a positive loss
}

// Trainer owns a TensorFlow graph and session that train a head (and,
// unfrozen, the backbone's last stage) with the graph's own optimiser ops.
// Its methods are safe for concurrent use (one step at a time).
type Trainer struct {
	opts   TrainerOptions
	rowLen int     // values per input row
	shape  []int64 // per-row input shape
	dim    int

	graph   *tf.Graph
	sess    *tf.Session
	x       tf.Output
	labels  tf.Output
	ia, ib  tf.Output
	y       tf.Output
	emb     tf.Output
	loss    tf.Output
	penalty tf.Output
	active  tf.Output
	lr      tf.Output
	b1p     tf.Output
	b2p     tf.Output
	updates []*tf.Operation

	headVars []*variable // per layer: W, B[, Alpha]
	tailVars []*variable // unfrozen backbone parameters, by weight name
	slots    []*variable // optimiser state
	layers   int

	mu     sync.Mutex
	step   int64
	closed bool
}

// NewTrainer builds the training graph. init is the head to start from
// (nil: a fresh identity head of o.Layers layers).
func NewTrainer(init *head.Head, o TrainerOptions) (*Trainer, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if init == nil {
		if init, err = head.New(o.Dim, o.Layers); err != nil {
			return nil, err
		}
	}
	if init.Dim() != o.Dim {
		return nil, fmt.Errorf("%w: head dimension %d, the backbone gives %d", ErrOptions, init.Dim(), o.Dim)
	}
	t := &Trainer{opts: o, dim: init.Dim(), layers: init.NumLayers()}
	s := op.NewScope()
	if o.Unfreeze {
		t.shape = UnfreezeFeatureShape
	} else {
		t.shape = []int64{int64(t.dim)}
	}
	t.rowLen = numElements(t.shape)
	t.x = op.Placeholder(s.SubScope("x"), tf.Float, op.PlaceholderShape(tf.MakeShape(append([]int64{-1}, t.shape...)...)))
	raw := t.x
	if o.Unfreeze {
		tail := s.SubScope("backbone")
		var pfErr error
		pf := func(name string, value *tf.Tensor) tf.Output {
			vals, err := flatFloats(value)
			if err != nil {
				pfErr = err
				return op.Const(tail.SubScope("bad"), float32(0))
			}
			v := newVariable(tail, strings.ReplaceAll(name, "/", "_"), value.Shape(), vals)
			v.name = name
			t.tailVars = append(t.tailVars, v)
			return v.read
		}
		stages, err := infer.BuildStages(tail, t.x, o.Weights, pf, UnfreezeFrom, infer.StageFC)
		if err != nil {
			return nil, fmt.Errorf("build backbone tail: %w", err)
		}
		if pfErr != nil {
			return nil, pfErr
		}
		raw = stages[len(stages)-1].Output
	}
	t.emb = t.buildHead(s.SubScope("head"), raw, init)

	switch o.Loss {
	case LossContrastive:
		t.ia = op.Placeholder(s.SubScope("pair_a"), tf.Int32, op.PlaceholderShape(tf.MakeShape(-1)))
		t.ib = op.Placeholder(s.SubScope("pair_b"), tf.Int32, op.PlaceholderShape(tf.MakeShape(-1)))
		t.y = op.Placeholder(s.SubScope("pair_y"), tf.Float, op.PlaceholderShape(tf.MakeShape(-1)))
		zero := op.Const(s.SubScope("gather_axis"), int32(0))
		a := op.GatherV2(s.SubScope("emb_a"), t.emb, t.ia, zero)
		b := op.GatherV2(s.SubScope("emb_b"), t.emb, t.ib, zero)
		t.loss, _ = Contrastive(s, a, b, t.y, o.Margin)
		t.active = op.Const(s.SubScope("no_active"), float32(0))
	case LossTriplet:
		t.labels = op.Placeholder(s.SubScope("labels"), tf.Int32, op.PlaceholderShape(tf.MakeShape(-1)))
		tl, err := TripletLoss(s, t.emb, t.labels, TripletOptions{Margin: o.Margin, Squared: o.Squared, Mining: o.Mining})
		if err != nil {
			return nil, err
		}
		t.loss, t.active = tl.Loss, tl.Active
	}

	trainable := append(append([]*variable(nil), t.headVars...), t.tailVars...)
	ps := s.SubScope("anchor_penalty")
	var terms []tf.Output
	for _, v := range trainable {
		vs := ps.SubScope(v.name)
		init, err := tensorOf(v.init, v.shape)
		if err != nil {
			return nil, err
		}
		d := op.Sub(vs.SubScope("delta"), v.read, op.Const(vs.SubScope("init"), init))
		terms = append(terms, op.Sum(vs.SubScope("sum"), op.Square(vs.SubScope("sq"), d),
			op.Range(vs.SubScope("axes"), op.Const(vs.SubScope("r0"), int32(0)), op.Rank(vs.SubScope("rank"), d), op.Const(vs.SubScope("r1"), int32(1)))))
	}
	decay := math.Max(0, o.AnchorDecay)
	t.penalty = op.Mul(ps.SubScope("weighted"), op.Const(ps.SubScope("decay"), float32(decay)), op.AddN(ps.SubScope("total"), terms))
	total := op.AddV2(s.SubScope("total_loss"), t.loss, t.penalty)

	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("build training graph: %w", err)
	}
	reads := make([]tf.Output, len(trainable))
	for i, v := range trainable {
		reads[i] = v.read
	}
	g, err := s.Finalize()
	if err != nil {
		return nil, fmt.Errorf("build training graph: %w", err)
	}
	grads, err := g.AddGradients("gradients", []tf.Output{total}, reads, nil)
	if err != nil {
		return nil, fmt.Errorf("gradients: %w", err)
	}
	// The optimiser ops go into the finalised graph through a fresh scope
	// on the same graph (op.NewScopeWithGraph).
	opt := op.NewScopeWithGraph(g).SubScope("optimizer")
	t.lr = op.Placeholder(opt.SubScope("lr"), tf.Float, op.PlaceholderShape(tf.ScalarShape()))
	t.b1p = op.Placeholder(opt.SubScope("beta1_power"), tf.Float, op.PlaceholderShape(tf.ScalarShape()))
	t.b2p = op.Placeholder(opt.SubScope("beta2_power"), tf.Float, op.PlaceholderShape(tf.ScalarShape()))
	f := func(name string, v float64) tf.Output { return op.Const(opt.SubScope(name), float32(v)) }
	beta1, beta2, eps, mom := f("beta1", o.Beta1), f("beta2", o.Beta2), f("epsilon", o.Epsilon), f("momentum", o.MomentumCoef)
	for i, v := range trainable {
		vs := opt.SubScope(v.name)
		zeros := make([]float32, numElements(v.shape))
		switch o.Optimizer {
		case Adam:
			m := newVariable(vs, "m", v.shape, zeros)
			m.name = v.name + "/adam_m"
			vv := newVariable(vs, "v", v.shape, zeros)
			vv.name = v.name + "/adam_v"
			t.slots = append(t.slots, m, vv)
			t.updates = append(t.updates, op.ResourceApplyAdam(vs.SubScope("apply"), v.handle, m.handle, vv.handle,
				t.b1p, t.b2p, t.lr, beta1, beta2, eps, grads[i]))
		case Momentum:
			acc := newVariable(vs, "accum", v.shape, zeros)
			acc.name = v.name + "/momentum"
			t.slots = append(t.slots, acc)
			t.updates = append(t.updates, op.ResourceApplyMomentum(vs.SubScope("apply"), v.handle, acc.handle, t.lr, grads[i], mom))
		}
	}
	if err := opt.Err(); err != nil {
		return nil, fmt.Errorf("build optimiser: %w", err)
	}
	t.graph = g
	t.sess, err = tf.NewSession(g, &tf.SessionOptions{Config: sessionConfig(o.Threads)})
	if err != nil {
		return nil, fmt.Errorf("new session: %w", err)
	}
	if err := t.assign(t.allVars(), nil); err != nil {
		t.sess.Close()
		return nil, fmt.Errorf("initialise variables: %w", err)
	}
	return t, nil
}

// buildHead adds the head (see package head) on raw [N,dim] with variables
// initialised from init, and returns the unit-length embeddings.
func (t *Trainer) buildHead(s *op.Scope, raw tf.Output, init *head.Head) tf.Output {
	dim := int64(t.dim)
	x := l2normalize(s.SubScope("input_norm"), raw)
	layers := init.Layers()
	for i, l := range layers {
		ls := s.SubScope(fmt.Sprintf("layer%d", i))
		w := newVariable(ls, "W", []int64{dim, dim}, l.W)
		b := newVariable(ls, "b", []int64{dim}, l.B)
		w.name, b.name = fmt.Sprintf("head/layer%d/W", i), fmt.Sprintf("head/layer%d/b", i)
		t.headVars = append(t.headVars, w, b)
		x = op.AddV2(ls.SubScope("bias"), op.MatMul(ls.SubScope("matmul"), x, w.read), b.read)
		if l.Alpha != nil {
			a := newVariable(ls, "alpha", []int64{dim}, l.Alpha)
			a.name = fmt.Sprintf("head/layer%d/alpha", i)
			t.headVars = append(t.headVars, a)
			// PReLU: relu(x) - alpha * relu(-x).
			neg := op.Relu(ls.SubScope("relu_neg"), op.Neg(ls.SubScope("neg"), x))
			x = op.Sub(ls.SubScope("prelu"), op.Relu(ls.SubScope("relu_pos"), x), op.Mul(ls.SubScope("alpha_neg"), a.read, neg))
		}
	}
	return l2normalize(s.SubScope("output_norm"), x)
}

// l2normalize scales the rows of x to unit length (rows of zeros stay zero).
func l2normalize(s *op.Scope, x tf.Output) tf.Output {
	ss := op.Sum(s.SubScope("sum_sq"), op.Square(s.SubScope("sq"), x), op.Const(s.SubScope("axis"), int32(1)), op.SumKeepDims(true))
	inv := op.Rsqrt(s.SubScope("rsqrt"), op.Maximum(s.SubScope("floor"), ss, op.Const(s.SubScope("eps"), float32(1e-12))))
	return op.Mul(s.SubScope("scaled"), x, inv)
}

func (t *Trainer) allVars() []*variable {
	out := append(append([]*variable(nil), t.headVars...), t.tailVars...)
	return append(out, t.slots...)
}

// assign sets the variables to values[name] (missing names: their initial
// value).
func (t *Trainer) assign(vars []*variable, values map[string][]float32) error {
	feeds := map[tf.Output]*tf.Tensor{}
	var targets []*tf.Operation
	for _, v := range vars {
		val := v.init
		if values != nil {
			if got, ok := values[v.name]; ok {
				val = got
			}
		}
		ten, err := tensorOf(val, v.shape)
		if err != nil {
			return fmt.Errorf("variable %s: %w", v.name, err)
		}
		feeds[v.value] = ten
		targets = append(targets, v.assign)
	}
	_, err := t.sess.Run(feeds, nil, targets)
	return err
}

// read returns the current values of vars by name.
func (t *Trainer) read(vars []*variable) (map[string][]float32, error) {
	fetches := make([]tf.Output, len(vars))
	for i, v := range vars {
		fetches[i] = v.read
	}
	out, err := t.sess.Run(nil, fetches, nil)
	if err != nil {
		return nil, err
	}
	m := make(map[string][]float32, len(vars))
	for i, v := range vars {
		if m[v.name], err = flatFloats(out[i]); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// RowLen is the number of values per input row (Dim, or 4*4*256 unfrozen).
func (t *Trainer) RowLen() int { return t.rowLen }

// Steps returns the number of optimiser steps taken.
func (t *Trainer) Steps() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.step
}

func (t *Trainer) inputTensor(x []float32) (*tf.Tensor, int, error) {
	if len(x) == 0 || len(x)%t.rowLen != 0 {
		return nil, 0, fmt.Errorf("%w: %d input values is not a whole number of %d-value rows", ErrOptions, len(x), t.rowLen)
	}
	n := len(x) / t.rowLen
	ten, err := tensorOf(x, append([]int64{int64(n)}, t.shape...))
	return ten, n, err
}

// Step runs one optimiser step on b and returns the loss before the update.
func (t *Trainer) Step(b Batch) (StepResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return StepResult{}, ErrClosed
	}
	xt, n, err := t.inputTensor(b.X)
	if err != nil {
		return StepResult{}, err
	}
	feeds := map[tf.Output]*tf.Tensor{t.x: xt}
	switch t.opts.Loss {
	case LossContrastive:
		if len(b.A) == 0 || len(b.A) != len(b.B) || len(b.A) != len(b.Y) {
			return StepResult{}, fmt.Errorf("%w: pairs A/B/Y have %d/%d/%d entries", ErrOptions, len(b.A), len(b.B), len(b.Y))
		}
		for j := range b.A {
			if b.A[j] < 0 || int(b.A[j]) >= n || b.B[j] < 0 || int(b.B[j]) >= n {
				return StepResult{}, fmt.Errorf("%w: pair %d (%d,%d) outside the %d rows", ErrOptions, j, b.A[j], b.B[j], n)
			}
		}
		feeds[t.ia], feeds[t.ib], feeds[t.y] = mustTensor(b.A), mustTensor(b.B), mustTensor(b.Y)
	case LossTriplet:
		if len(b.Labels) != n {
			return StepResult{}, fmt.Errorf("%w: %d labels for %d rows", ErrOptions, len(b.Labels), n)
		}
		feeds[t.labels] = mustTensor(b.Labels)
	}
	stepNo := float64(t.step + 1)
	feeds[t.lr] = mustTensor(float32(t.opts.LearningRate))
	feeds[t.b1p] = mustTensor(float32(math.Pow(t.opts.Beta1, stepNo)))
	feeds[t.b2p] = mustTensor(float32(math.Pow(t.opts.Beta2, stepNo)))
	out, err := t.sess.Run(feeds, []tf.Output{t.loss, t.penalty, t.active}, t.updates)
	if err != nil {
		return StepResult{}, fmt.Errorf("training step: %w", err)
	}
	t.step++
	r := StepResult{Loss: float64(out[0].Value().(float32)), Penalty: float64(out[1].Value().(float32)), Active: float64(out[2].Value().(float32))}
	if math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) {
		return r, fmt.Errorf("training diverged: loss %v at step %d", r.Loss, t.step)
	}
	return r, nil
}

func mustTensor(v any) *tf.Tensor {
	t, err := tf.NewTensor(v)
	if err != nil {
		panic(err) // only called with Go slices and scalars of supported types
	}
	return t
}

// Embed runs rows x (flat, RowLen values each) through the current model and
// returns the unit-length embeddings.
func (t *Trainer) Embed(x []float32) ([][]float32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	xt, _, err := t.inputTensor(x)
	if err != nil {
		return nil, err
	}
	out, err := t.sess.Run(map[tf.Output]*tf.Tensor{t.x: xt}, []tf.Output{t.emb}, nil)
	if err != nil {
		return nil, err
	}
	return out[0].Value().([][]float32), nil
}

// Head returns the head with the current trained parameters.
func (t *Trainer) Head() (*head.Head, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	vals, err := t.read(t.headVars)
	if err != nil {
		return nil, err
	}
	layers := make([]head.Layer, t.layers)
	for i := range layers {
		layers[i].W = vals[fmt.Sprintf("head/layer%d/W", i)]
		layers[i].B = vals[fmt.Sprintf("head/layer%d/b", i)]
		layers[i].Alpha = vals[fmt.Sprintf("head/layer%d/alpha", i)]
	}
	return head.FromLayers(t.dim, layers)
}

// TailParams returns the trained backbone parameters (unfrozen trainers;
// nil otherwise), with the names and shapes of infer's weights.
func (t *Trainer) TailParams() ([]infer.Param, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if len(t.tailVars) == 0 {
		return nil, nil
	}
	vals, err := t.read(t.tailVars)
	if err != nil {
		return nil, err
	}
	out := make([]infer.Param, len(t.tailVars))
	for i, v := range t.tailVars {
		out[i] = infer.Param{Name: v.name, Shape: append([]int64(nil), v.shape...), Values: vals[v.name]}
	}
	return out, nil
}

// Close releases the session. Later calls return ErrClosed.
func (t *Trainer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	t.closed = true
	return errors.Join(t.sess.Close())
}

// sessionConfig caps the session at intraOp threads per op, one op at a
// time, in per-session pools: they keep the trainer's thread cap from
// resizing (or being overridden by) the process-wide pools the embedder
// uses.
func sessionConfig(intraOp int) []byte {
	return tfconfig.Config{IntraOpThreads: intraOp, InterOpThreads: 1, PerSessionThreads: true}.Marshal()
}
