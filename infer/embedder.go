package infer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/internal/tfconfig"
)

// Options configure an Embedder. The zero value gives the defaults.
type Options struct {
	// Backbone is the id of the network to run (Lookup). Default
	// DefaultBackbone ("mobilefacenet"). NewEmbedderWithNetwork ignores it.
	Backbone string `yaml:"backbone" json:"backbone"`
	// IntraOpThreads is the size of TensorFlow's thread pool inside one op
	// (a convolution). Default: the number of CPUs. TensorFlow shares the
	// pool process-wide, sized by the first session created.
	IntraOpThreads int `yaml:"intra_op_threads" json:"intra_op_threads"`
	// InterOpThreads is the number of ops run concurrently. The network is a
	// chain, so 1 (the default) avoids oversubscribing 2-4 core devices.
	InterOpThreads int `yaml:"inter_op_threads" json:"inter_op_threads"`
	// MaxBatch caps the chips run in one session call. Default 32.
	MaxBatch int `yaml:"max_batch" json:"max_batch"`
	// BatchWait is how long the collector waits for more requests once one
	// has arrived and the batch is not full. Default 2ms; negative: never
	// wait (take only what is already queued).
	BatchWait time.Duration `yaml:"batch_wait" json:"batch_wait"`
	// Flip averages the embedding of each chip with that of its mirror
	// image (test-time augmentation; twice the compute). Default off.
	Flip bool `yaml:"flip" json:"flip"`
	// Logger receives start-up information. Default: slog.Default(). At
	// debug level TensorFlow's own log lines are let through too.
	Logger *slog.Logger `yaml:"-" json:"-"`
}

// DefaultOptions returns the defaults spelled out.
func DefaultOptions() Options {
	return Options{
		IntraOpThreads: runtime.NumCPU(),
		InterOpThreads: 1,
		MaxBatch:       32,
		BatchWait:      2 * time.Millisecond,
		Logger:         slog.Default(),
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.IntraOpThreads <= 0 {
		o.IntraOpThreads = d.IntraOpThreads
	}
	if o.InterOpThreads <= 0 {
		o.InterOpThreads = d.InterOpThreads
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = d.MaxBatch
	}
	if o.BatchWait == 0 {
		o.BatchWait = d.BatchWait
	}
	if o.Logger == nil {
		o.Logger = d.Logger
	}
	if o.Backbone == "" {
		o.Backbone = DefaultBackbone
	}
	return o
}

// Embedder maps aligned face chips to raw embeddings with one TensorFlow
// session running one backbone. It is safe for concurrent use: chips from concurrent Embed calls
// are gathered into batches (up to Options.MaxBatch) by one collector
// goroutine, so several cameras share the network efficiently.
type Embedder struct {
	opts     Options
	backbone *Backbone
	graph    *tf.Graph
	sess     *tf.Session
	input    tf.Output // uint8 [N,size,size,3]
	output   tf.Output // float32 [N,dim]
	flops    int64

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	reqs   chan *request
	done   chan struct{} // closed when the collector has exited
}

type request struct {
	chips []face.Chip
	out   []face.Embedding
	err   error
	done  chan struct{}
}

// NewEmbedder loads the backbone Options.Backbone names from modelDir
// (Backbone.Load), builds the network and starts a session.
func NewEmbedder(modelDir string, opts Options) (*Embedder, error) {
	opts = opts.withDefaults()
	b, err := Lookup(opts.Backbone)
	if err != nil {
		return nil, err
	}
	n, err := b.Load(modelDir)
	if err != nil {
		return nil, err
	}
	return NewEmbedderWithNetwork(n, opts)
}

// NewEmbedderWithWeights is NewEmbedder for the dlib ResNet with weights
// already loaded (shared with a fine-tuning job, for instance).
func NewEmbedderWithWeights(w *Weights, opts Options) (*Embedder, error) {
	return NewEmbedderWithNetwork(w, opts)
}

// NewEmbedderWithNetwork is NewEmbedder with a network already loaded;
// Options.Backbone is ignored (the network's own is used).
func NewEmbedderWithNetwork(n Network, opts Options) (*Embedder, error) {
	opts = opts.withDefaults()
	b := n.Backbone()
	opts.Backbone = b.ID
	debug := opts.Logger.Enabled(context.Background(), slog.LevelDebug)
	s := op.NewScope()
	size := int64(b.InputSize)
	input := op.Placeholder(s.SubScope("input"), tf.Uint8, op.PlaceholderShape(tf.MakeShape(-1, size, size, 3)))
	x := op.Cast(s.SubScope("cast"), input, tf.Float)
	// The weights live in resource variables, set once from fed tensors,
	// rather than in Const nodes: constants would sit in the GraphDef, in
	// every copy grappler makes of it and in the executor (~390 MB of
	// resident memory against ~100 MB this way).
	vars := NewVariables(s.SubScope("weights"))
	emb, err := n.Build(s, x, vars.Param)
	if err != nil {
		return nil, fmt.Errorf("build network: %w", err)
	}
	output := op.Identity(s.SubScope("embedding"), emb)
	g, err := s.Finalize()
	if err != nil {
		return nil, fmt.Errorf("build network: %w", err)
	}
	t0 := time.Now()
	var sess *tf.Session
	// Start the session and run it once (TF optimises the graph on the first
	// run, and logs while doing so) with TF's start-up chatter held back.
	err = quietTF(debug, func() error {
		var err error
		sess, err = tf.NewSession(g, &tf.SessionOptions{Config: tfconfig.Config{IntraOpThreads: opts.IntraOpThreads, InterOpThreads: opts.InterOpThreads}.Marshal()})
		if err != nil {
			return fmt.Errorf("tensorflow session: %w", err)
		}
		if err := vars.Init(sess); err != nil {
			sess.Close()
			return fmt.Errorf("tensorflow session: %w", err)
		}
		warm, err := tf.ReadTensor(tf.Uint8, []int64{1, size, size, 3}, bytes.NewReader(make([]byte, size*size*3)))
		if err == nil {
			_, err = sess.Run(map[tf.Output]*tf.Tensor{input: warm}, []tf.Output{output}, nil)
		}
		if err != nil {
			sess.Close()
			return fmt.Errorf("tensorflow session: first run: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e := &Embedder{
		opts: opts, backbone: b, graph: g, sess: sess, input: input, output: output,
		flops: CountFLOPs(g),
		reqs:  make(chan *request),
		done:  make(chan struct{}),
	}
	go e.collect()
	opts.Logger.Debug("embedder ready", "backbone", b.ID, "intra_op_threads", opts.IntraOpThreads, "inter_op_threads", opts.InterOpThreads,
		"max_batch", opts.MaxBatch, "flip", opts.Flip, "gflop_per_face", float64(e.flops)/1e9, "session_start", time.Since(t0))
	return e, nil
}

// FLOPsPerFace is the network's floating-point operation count for one chip
// (convolutions and the FC layer, see CountFLOPs); flip doubles the work.
func (e *Embedder) FLOPsPerFace() int64 { return e.flops }

// Options returns the effective options (defaults filled in).
func (e *Embedder) Options() Options { return e.opts }

// Backbone is the network the embedder runs.
func (e *Embedder) Backbone() *Backbone { return e.backbone }

// Embed returns one raw embedding (Backbone().Dim values) per chip, in
// order. A chip of the wrong size (not Backbone().InputSize) fails the
// whole call, with its index, before any work is done.
func (e *Embedder) Embed(chips []face.Chip) ([]face.Embedding, error) {
	for i, c := range chips {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("chip %d: %w", i, err)
		}
		if c.Side() != e.backbone.InputSize {
			return nil, fmt.Errorf("chip %d: %w: %dx%d, the %s backbone takes %dx%d chips", i, face.ErrChipSize,
				c.Side(), c.Side(), e.backbone.ID, e.backbone.InputSize, e.backbone.InputSize)
		}
	}
	if len(chips) == 0 {
		return nil, nil
	}
	work := chips
	if e.opts.Flip {
		work = make([]face.Chip, 0, 2*len(chips))
		work = append(work, chips...)
		for _, c := range chips {
			work = append(work, MirrorChip(c))
		}
	}
	// Split into batch-sized requests so a large call cannot starve others.
	var reqs []*request
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return nil, ErrClosed
	}
	for start := 0; start < len(work); start += e.opts.MaxBatch {
		r := &request{chips: work[start:min(start+e.opts.MaxBatch, len(work))], done: make(chan struct{})}
		reqs = append(reqs, r)
		e.reqs <- r
	}
	e.mu.RUnlock()
	out := make([]face.Embedding, 0, len(work))
	for _, r := range reqs {
		<-r.done
		if r.err != nil {
			return nil, r.err
		}
		out = append(out, r.out...)
	}
	if e.opts.Flip {
		n := len(chips)
		for i := range n {
			a, b := out[i], out[n+i]
			for k := range a {
				a[k] = (a[k] + b[k]) / 2
			}
		}
		out = out[:n]
	}
	return out, nil
}

// MirrorChip returns the chip flipped left to right.
func MirrorChip(c face.Chip) face.Chip {
	n := c.Side()
	pix := make([]uint8, len(c.Pix))
	for y := range n {
		row := c.Pix[y*n*3 : (y+1)*n*3]
		dst := pix[y*n*3 : (y+1)*n*3]
		for x := range n {
			copy(dst[(n-1-x)*3:(n-x)*3], row[x*3:(x+1)*3])
		}
	}
	return face.Chip{Size: c.Size, Pix: pix}
}

// collect gathers requests into batches and runs them, until reqs closes.
func (e *Embedder) collect() {
	defer close(e.done)
	var pending *request
	for {
		first := pending
		pending = nil
		if first == nil {
			var ok bool
			if first, ok = <-e.reqs; !ok {
				return
			}
		}
		batch, n := []*request{first}, len(first.chips)
		var timeout <-chan time.Time
		var timer *time.Timer
		if e.opts.BatchWait > 0 && n < e.opts.MaxBatch {
			timer = time.NewTimer(e.opts.BatchWait)
			timeout = timer.C
		}
		closed := false
	gather:
		for n < e.opts.MaxBatch {
			var r *request
			var ok bool
			if timeout == nil {
				select {
				case r, ok = <-e.reqs:
				default:
					break gather
				}
			} else {
				select {
				case r, ok = <-e.reqs:
				case <-timeout:
					break gather
				}
			}
			if !ok {
				closed = true
				break
			}
			if n+len(r.chips) > e.opts.MaxBatch {
				pending = r
				break
			}
			batch, n = append(batch, r), n+len(r.chips)
		}
		if timer != nil {
			timer.Stop()
		}
		e.run(batch, n)
		if closed {
			if pending != nil {
				e.run([]*request{pending}, len(pending.chips))
			}
			return
		}
	}
}

// run embeds the chips of a batch of requests in one session call.
func (e *Embedder) run(batch []*request, n int) {
	out, err := e.runChips(batch, n)
	k := 0
	for _, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.out = out[k : k+len(r.chips)]
			k += len(r.chips)
		}
		close(r.done)
	}
}

func (e *Embedder) runChips(batch []*request, n int) ([]face.Embedding, error) {
	size := int64(e.backbone.InputSize)
	buf := make([]byte, 0, int64(n)*size*size*3)
	for _, r := range batch {
		for _, c := range r.chips {
			buf = append(buf, c.Pix...)
		}
	}
	in, err := tf.ReadTensor(tf.Uint8, []int64{int64(n), size, size, 3}, bytes.NewReader(buf))
	if err != nil {
		return nil, fmt.Errorf("input tensor: %w", err)
	}
	res, err := e.sess.Run(map[tf.Output]*tf.Tensor{e.input: in}, []tf.Output{e.output}, nil)
	if err != nil {
		return nil, fmt.Errorf("run network: %w", err)
	}
	rows, ok := res[0].Value().([][]float32)
	if !ok || len(rows) != n {
		return nil, fmt.Errorf("run network: unexpected output %v", res[0].Shape())
	}
	out := make([]face.Embedding, n)
	for i, r := range rows {
		out[i] = face.Embedding(r)
	}
	return out, nil
}

// Close waits for queued requests to finish, then releases the session.
// Later calls (and Embed) return ErrClosed.
func (e *Embedder) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	e.closed = true
	close(e.reqs)
	e.mu.Unlock()
	<-e.done
	return e.sess.Close()
}
