package infer

import (
	"fmt"
	"slices"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// ParamFunc turns a named weight into the graph value the network uses. The
// default (nil) embeds every weight as a Const. A fine-tuning graph passes
// its own to make some weights trainable Variables, e.g. every name with the
// prefix "conv256_down_out/" and "fc". value holds the loaded weight (the
// initial value of a Variable).
type ParamFunc func(name string, value *tf.Tensor) tf.Output

// Stage is one named step of the network and its output.
type Stage struct {
	Name   string
	Output tf.Output
}

// BuildBackbone adds the whole network to s and returns its output, the raw
// 128-d embedding [N,128] float32 (not L2-normalised). input is NHWC
// [N,150,150,3] float32 RGB with values 0..255 (cast uint8 chips with
// op.Cast); the mean subtraction and scaling are part of the network.
// params == nil embeds the weights as constants.
func BuildBackbone(s *op.Scope, input tf.Output, w *Weights, params ParamFunc) (tf.Output, error) {
	stages, err := BuildStages(s, input, w, params, StageInput, StageFC)
	if err != nil {
		return tf.Output{}, err
	}
	return stages[len(stages)-1].Output, nil
}

// BuildStages adds the stages from..to (inclusive, names from StageNames) to
// s and returns each stage's output in order. input is what stage `from`
// consumes: the 0..255 image for StageInput, otherwise the output of the
// stage before it; e.g. from = "conv256_down_out" takes the [N,4,4,256]
// output of "conv256_2", so a fine-tuning job can compute the frozen part
// once and train only the last stages on those features.
func BuildStages(s *op.Scope, input tf.Output, w *Weights, params ParamFunc, from, to string) ([]Stage, error) {
	if w == nil {
		return nil, fmt.Errorf("%w: nil weights", ErrInput)
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	names := StageNames()
	i, j := slices.Index(names, from), slices.Index(names, to)
	if i < 0 || j < 0 || j < i {
		return nil, fmt.Errorf("%w: stages %q..%q (want two of %v, in order)", ErrInput, from, to, names)
	}
	shapes := stageShapes()
	if err := checkInput(input, shapes[i]); err != nil {
		return nil, fmt.Errorf("%w: stage %q: %w", ErrInput, from, err)
	}
	b := &builder{root: s, w: w, params: params}
	x := input
	var out []Stage
	for k := i; k <= j; k++ {
		x = b.stage(s.SubScope(names[k]), names[k], x, shapes[k])
		if b.err != nil {
			return nil, b.err
		}
		if err := s.Err(); err != nil {
			return nil, fmt.Errorf("build stage %q: %w", names[k], err)
		}
		out = append(out, Stage{Name: names[k], Output: x})
	}
	return out, nil
}

// stageShapes returns, for each stage of StageNames, the shape of its input
// without the batch dimension: [H, W, C] for images, [C] after pooling.
func stageShapes() [][]int64 {
	h, c := int64(InputSize), int64(3)
	var shapes [][]int64
	add := func() { shapes = append(shapes, []int64{h, h, c}) }
	add() // input_normalized
	add() // conv32_down
	h, c = (h-7)/2+1, blocks[0].cout
	add() // maxpool
	h = (h-3)/2 + 1
	for _, b := range blocks[1:] {
		add()
		if b.kind == downBlock {
			h, c = h/2, b.cout // the shortcut's size; the conv branch is padded to it
		}
	}
	shapes = append(shapes, []int64{h, h, c}) // global_avg
	shapes = append(shapes, []int64{c})       // fc
	return shapes
}

// checkInput verifies the known dimensions of x against want (batch free).
func checkInput(x tf.Output, want []int64) error {
	if x.Op == nil {
		return fmt.Errorf("no input")
	}
	if x.DataType() != tf.Float {
		return fmt.Errorf("input is %v, want float32", x.DataType())
	}
	got := x.Shape()
	if got.NumDimensions() < 0 {
		return nil // unknown rank: TF checks at run time
	}
	if got.NumDimensions() != len(want)+1 {
		return fmt.Errorf("input shape %v, want [N %v]", got, want)
	}
	for d, v := range want {
		if n := got.Size(d + 1); n >= 0 && n != v {
			return fmt.Errorf("input shape %v, want [N %v]", got, want)
		}
	}
	return nil
}

type builder struct {
	root   *op.Scope
	w      *Weights
	params ParamFunc
	err    error
}

func (b *builder) param(name string) tf.Output {
	t, err := b.w.Tensor(name)
	if err != nil {
		if b.err == nil {
			b.err = err
		}
		return op.Const(b.root.SubScope("missing"), float32(0))
	}
	if b.params != nil {
		return b.params(name, t)
	}
	return op.Const(b.root.SubScope(name), t)
}

func (b *builder) stage(s *op.Scope, name string, x tf.Output, inShape []int64) tf.Output {
	switch name {
	case StageInput:
		// (x - mean) / 255 in float32: a true division as tfjs does.
		mean := op.Const(s.SubScope("mean"), inputMean[:])
		return op.RealDiv(s, op.Sub(s, x, mean), op.Const(s.SubScope("scale"), float32(255)))
	case StageMaxPool:
		return op.MaxPool(s, x, []int64{1, 3, 3, 1}, []int64{1, 2, 2, 1}, "VALID")
	case StageGlobalAvg:
		return op.Mean(s, x, op.Const(s.SubScope("axes"), []int32{1, 2}))
	case StageFC:
		return op.MatMul(s, x, b.param("fc"))
	}
	for _, blk := range blocks {
		if blk.name != name {
			continue
		}
		switch blk.kind {
		case stemBlock:
			return b.convLayer(s, x, name, 2, "VALID", true)
		case residualBlock:
			a := b.convLayer(s.SubScope("conv1"), x, name+"/conv1", 1, "SAME", true)
			y := b.convLayer(s.SubScope("conv2"), a, name+"/conv2", 1, "SAME", false)
			return op.Relu(s, op.AddV2(s, y, x))
		case downBlock:
			return b.residualDown(s, x, blk, inShape[0])
		}
	}
	b.err = fmt.Errorf("%w: unknown stage %q", ErrInput, name)
	return x
}

// convLayer is face-api's ConvLayer: Conv2D, + bias, then the scale layer
// (dlib's affine / folded batch norm), then an optional ReLU. The scale is
// not folded into the filters: that would change the rounding.
func (b *builder) convLayer(s *op.Scope, x tf.Output, prefix string, stride int64, padding string, relu bool) tf.Output {
	y := op.Conv2D(s, x, b.param(prefix+"/conv/filters"), []int64{1, stride, stride, 1}, padding)
	y = op.AddV2(s.SubScope("bias"), y, b.param(prefix+"/conv/bias"))
	y = op.Mul(s.SubScope("scale"), y, b.param(prefix+"/scale/weights"))
	y = op.AddV2(s.SubScope("shift"), y, b.param(prefix+"/scale/biases"))
	if relu {
		y = op.Relu(s, y)
	}
	return y
}

// residualDown is the downsampling block: a stride-2 conv branch and an
// average-pooled shortcut, zero-padded to match (spatially when H is even,
// in channels when Cout = 2*Cin).
func (b *builder) residualDown(s *op.Scope, x tf.Output, blk blockSpec, h int64) tf.Output {
	a := b.convLayer(s.SubScope("conv1"), x, blk.name+"/conv1", 2, "VALID", true)
	y := b.convLayer(s.SubScope("conv2"), a, blk.name+"/conv2", 1, "SAME", false)
	short := op.AvgPool(s, x, []int64{1, 2, 2, 1}, []int64{1, 2, 2, 1}, "VALID")
	convH, poolH := (h-3)/2+1, h/2
	if pad := poolH - convH; pad > 0 {
		ps := s.SubScope("pad")
		y = op.Pad(ps, y, op.Const(ps, [][]int32{{0, 0}, {0, int32(pad)}, {0, int32(pad)}, {0, 0}}))
	}
	if blk.cout > blk.cin {
		cs := s.SubScope("zeros")
		short = op.ConcatV2(cs, []tf.Output{short, op.ZerosLike(cs, short)}, op.Const(cs.SubScope("axis"), int32(3)))
	}
	return op.Relu(s, op.AddV2(s, y, short))
}

// CountFLOPs counts the floating-point operations per example of the Conv2D,
// DepthwiseConv2dNative and MatMul ops in g (2 per multiply-add), from the shapes in the graph; an
// unknown batch dimension counts as 1. Element-wise ops, pooling and the
// mean are left out (under 1% here).
func CountFLOPs(g *tf.Graph) int64 {
	var total int64
	for _, o := range g.Operations() {
		for k := 0; k < o.NumOutputs(); k++ {
			for _, c := range o.Output(k).Consumers() {
				// Only the second input (filter / weights) of a Conv2D or
				// MatMul; other consumers may have no output at all.
				if c.Index != 1 || (c.Op.Type() != "Conv2D" && c.Op.Type() != "MatMul" && c.Op.Type() != "DepthwiseConv2dNative") {
					continue
				}
				w, err := o.Output(k).Shape().ToSlice()
				if err != nil {
					continue
				}
				out, err := c.Op.Output(0).Shape().ToSlice()
				if err != nil {
					continue
				}
				for i := range out {
					if out[i] < 0 {
						out[i] = 1
					}
				}
				switch {
				case c.Op.Type() == "Conv2D" && len(w) == 4: // filter [kh,kw,cin,cout]
					total += 2 * numElements(out) * w[0] * w[1] * w[2]
				case c.Op.Type() == "DepthwiseConv2dNative" && len(w) == 4: // [kh,kw,cin,mult]: one input channel per output
					total += 2 * numElements(out) * w[0] * w[1]
				case c.Op.Type() == "MatMul" && len(w) == 2: // [K,N]
					total += 2 * numElements(out) * w[0]
				}
			}
		}
	}
	return total
}
