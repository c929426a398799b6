package finetune

import (
	"fmt"
	"sync"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/infer"
)

// Extractor runs the frozen backbone (infer's builder, weights in
// variables) on face chips and returns both the raw 128-d embedding and the
// UnfreezeInputStage features, so offline training computes the frozen
// part of the network once per chip and caches it.
type Extractor struct {
	mu     sync.Mutex
	sess   *tf.Session
	input  tf.Output
	raw    tf.Output
	feat   tf.Output
	batch  int
	closed bool
}

// NewExtractor builds the network on w with a session of threads intra-op
// threads (0: TensorFlow's default, every core).
func NewExtractor(w *infer.Weights, threads int) (*Extractor, error) {
	s := op.NewScope()
	input := op.Placeholder(s.SubScope("chips"), tf.Uint8, op.PlaceholderShape(tf.MakeShape(-1, infer.InputSize, infer.InputSize, 3)))
	x := op.Cast(s.SubScope("cast"), input, tf.Float)
	vars := infer.NewVariables(s.SubScope("weights"))
	stages, err := infer.BuildStages(s.SubScope("backbone"), x, w, vars.Param, infer.StageInput, infer.StageFC)
	if err != nil {
		return nil, err
	}
	e := &Extractor{input: input, batch: 16}
	for _, st := range stages {
		if st.Name == UnfreezeInputStage {
			e.feat = st.Output
		}
	}
	e.raw = stages[len(stages)-1].Output
	if e.feat.Op == nil {
		return nil, fmt.Errorf("backbone has no stage %q", UnfreezeInputStage)
	}
	g, err := s.Finalize()
	if err != nil {
		return nil, fmt.Errorf("build extractor: %w", err)
	}
	var cfg []byte
	if threads > 0 {
		cfg = sessionConfig(threads)
	}
	if e.sess, err = tf.NewSession(g, &tf.SessionOptions{Config: cfg}); err != nil {
		return nil, err
	}
	if err := vars.Init(e.sess); err != nil {
		e.sess.Close()
		return nil, err
	}
	return e, nil
}

// Extract returns, per chip, the raw embedding (128 values) and, when
// withFeatures, the UnfreezeInputStage features (4*4*256 values, HWC).
func (e *Extractor) Extract(chips []face.Chip, withFeatures bool) (raw, feat [][]float32, err error) {
	for i, c := range chips {
		if err := c.Validate(); err != nil {
			return nil, nil, fmt.Errorf("chip %d: %w", i, err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, nil, ErrClosed
	}
	for start := 0; start < len(chips); start += e.batch {
		part := chips[start:min(start+e.batch, len(chips))]
		pix := make([]uint8, 0, len(part)*len(part[0].Pix))
		for _, c := range part {
			pix = append(pix, c.Pix...)
		}
		t, err := tf.NewTensor(pix)
		if err != nil {
			return nil, nil, err
		}
		if err := t.Reshape([]int64{int64(len(part)), infer.InputSize, infer.InputSize, 3}); err != nil {
			return nil, nil, err
		}
		fetch := []tf.Output{e.raw}
		if withFeatures {
			fetch = append(fetch, e.feat)
		}
		out, err := e.sess.Run(map[tf.Output]*tf.Tensor{e.input: t}, fetch, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("backbone: %w", err)
		}
		raw = append(raw, out[0].Value().([][]float32)...)
		if withFeatures {
			flat, err := flatFloats(out[1])
			if err != nil {
				return nil, nil, err
			}
			n := numElements(UnfreezeFeatureShape)
			for i := range part {
				feat = append(feat, flat[i*n:(i+1)*n])
			}
		}
	}
	return raw, feat, nil
}

// Close releases the session; later calls return ErrClosed.
func (e *Extractor) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.closed = true
	return e.sess.Close()
}
