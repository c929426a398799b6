package finetune

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// variable is a resource variable with a feedable initialiser: assigning
// from a placeholder (rather than a Const) lets one op both initialise the
// variable and restore it from a checkpoint, and keeps large initial values
// out of the graph definition.
type variable struct {
	name   string
	shape  []int64
	handle tf.Output
	read   tf.Output // the single read the model uses (see newVariable)
	value  tf.Output // placeholder fed to assign
	assign *tf.Operation
	init   []float32 // the initial value (anchor of the decay penalty)
}

// newVariable adds a float32 variable. The model must use v.read for every
// use, so that within one step every use sees the same value and the
// optimiser's update (which depends on the gradient, hence on the read)
// happens after it.
func newVariable(s *op.Scope, name string, shape []int64, init []float32) *variable {
	s = s.SubScope(name)
	v := &variable{name: name, shape: shape, init: init}
	// The resource is keyed by shared_name: an empty one would make every
	// variable of the session the same resource.
	v.handle = op.VarHandleOp(s.SubScope("handle"), tf.Float, tf.MakeShape(shape...),
		op.VarHandleOpSharedName(fmt.Sprintf("edged_var_%d_%s", varCounter.Add(1), name)))
	v.read = op.ReadVariableOp(s.SubScope("read"), v.handle, tf.Float)
	v.value = op.Placeholder(s.SubScope("value"), tf.Float, op.PlaceholderShape(tf.MakeShape(shape...)))
	v.assign = op.AssignVariableOp(s.SubScope("assign"), v.handle, v.value)
	return v
}

var varCounter atomic.Int64

func numElements(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// tensorOf builds a float32 tensor of the variable's shape from flat values.
func tensorOf(values []float32, shape []int64) (*tf.Tensor, error) {
	if len(values) != numElements(shape) {
		return nil, fmt.Errorf("%d values for shape %v", len(values), shape)
	}
	t, err := tf.NewTensor(values)
	if err != nil {
		return nil, err
	}
	if err := t.Reshape(shape); err != nil {
		return nil, err
	}
	return t, nil
}

// flatFloats returns a float32 tensor's values in row-major order, whatever
// its rank.
func flatFloats(t *tf.Tensor) ([]float32, error) {
	if t.DataType() != tf.Float {
		return nil, fmt.Errorf("tensor is %v, want float32", t.DataType())
	}
	var buf bytes.Buffer
	if _, err := t.WriteContentsTo(&buf); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	out := make([]float32, len(b)/4)
	for i := range out {
		// TensorFlow writes native byte order; every target edged builds for
		// (amd64, arm64, armv7) is little-endian.
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}
