// Package tflite reads the parts of a TensorFlow Lite model file (the
// "TFL3" flatbuffer defined by tensorflow/lite/schema/schema.fbs) that a
// float32 convolutional network such as MobileFaceNet needs: the single
// subgraph's tensors (name, shape, type, constant data), its operators with
// their builtin options, and its inputs and outputs.
//
// The flatbuffer tables are decoded by hand rather than with generated code
// from github.com/google/flatbuffers, because:
//
//   - about ten tables are needed, which does not justify a new dependency
//     and a generated file of tens of thousands of lines;
//   - generated flatbuffer accessors trust the file and panic (or read out of
//     bounds) on corrupt input, whereas here every offset, vtable, vector
//     length and string is bounds-checked, so a damaged or hostile file can
//     only produce an error;
//   - the reader is a pure function of a byte slice, which makes it fuzzable
//     in isolation (see FuzzParse).
//
// Only the eight operators the supported models use are accepted (ADD, ABS,
// CONV_2D, DEPTHWISE_CONV_2D, MUL, RELU, RESHAPE, SUB); anything else is
// reported by name with ErrUnsupported, so that a new model fails at load
// time with a message saying what is missing, not later with a wrong graph.
package tflite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
)

var (
	// ErrFormat is wrapped by every error caused by a corrupt, truncated or
	// non-TFLite file.
	ErrFormat = errors.New("tflite: malformed model file")
	// ErrUnsupported is wrapped by every error caused by a well-formed file
	// that uses something this reader does not implement.
	ErrUnsupported = errors.New("tflite: unsupported model feature")
)

// TensorType is the schema's TensorType enum.
type TensorType int8

// Tensor element types, numbered as in the schema.
const (
	Float32 TensorType = iota
	Float16
	Int32
	Uint8
	Int64
	String
	Bool
	Int16
	Complex64
	Int8
	Float64
	Complex128
	Uint64
	Resource
	Variant
	Uint32
	Uint16
	Int4
)

var typeNames = [...]string{"FLOAT32", "FLOAT16", "INT32", "UINT8", "INT64", "STRING",
	"BOOL", "INT16", "COMPLEX64", "INT8", "FLOAT64", "COMPLEX128", "UINT64", "RESOURCE",
	"VARIANT", "UINT32", "UINT16", "INT4"}

func (t TensorType) String() string {
	if t >= 0 && int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("TensorType(%d)", int8(t))
}

// size is the byte size of one element, or 0 when elements are not a whole
// number of bytes or have variable size (then the data length is not checked).
func (t TensorType) size() int64 {
	switch t {
	case Uint8, Int8, Bool:
		return 1
	case Float16, Int16, Uint16:
		return 2
	case Float32, Int32, Uint32:
		return 4
	case Int64, Uint64, Float64, Complex64:
		return 8
	case Complex128:
		return 16
	}
	return 0
}

// Op is a builtin operator code (the schema's BuiltinOperator enum).
type Op int32

// The operators this package accepts.
const (
	Add             Op = 0
	Conv2D          Op = 3
	DepthwiseConv2D Op = 4
	Mul             Op = 18
	Relu            Op = 19
	Reshape         Op = 22
	Sub             Op = 41
	Abs             Op = 101

	custom Op = 32 // CUSTOM: the name is in OperatorCode.custom_code
)

// String returns the schema name, e.g. "CONV_2D".
func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("BuiltinOperator(%d)", int32(o))
}

// Padding is the schema's Padding enum.
type Padding int8

const (
	PaddingSame  Padding = 0
	PaddingValid Padding = 1
)

// String returns "SAME" or "VALID", the spelling TensorFlow's conv ops take.
func (p Padding) String() string {
	switch p {
	case PaddingSame:
		return "SAME"
	case PaddingValid:
		return "VALID"
	}
	return fmt.Sprintf("Padding(%d)", int8(p))
}

// Activation is the schema's ActivationFunctionType, an activation fused
// into the operator's output.
type Activation int8

const (
	ActNone      Activation = 0
	ActRelu      Activation = 1
	ActReluN1To1 Activation = 2
	ActRelu6     Activation = 3
	ActTanh      Activation = 4
	ActSignBit   Activation = 5
)

var actNames = [...]string{"NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT"}

func (a Activation) String() string {
	if a >= 0 && int(a) < len(actNames) {
		return actNames[a]
	}
	return fmt.Sprintf("Activation(%d)", int8(a))
}

// Tensor is one tensor of the model's subgraph.
type Tensor struct {
	Name  string
	Shape []int32
	Type  TensorType
	// Data is the constant value, a sub-slice of the file (do not modify),
	// or nil for tensors computed at run time (activations, inputs).
	Data []byte
}

// Operator is one node of the graph, in execution order.
type Operator struct {
	Op      Op
	Inputs  []int // tensor indices; -1 marks an absent optional input
	Outputs []int

	// Builtin options; zero when the operator has none.
	Padding              Padding
	StrideW, StrideH     int
	DilationW, DilationH int // 1 when absent
	DepthMultiplier      int
	Activation           Activation
	NewShape             []int32 // RESHAPE; nil means the shape is input 1
}

// Model is the single subgraph of a TFLite file.
type Model struct {
	Version     uint32
	Description string
	Tensors     []Tensor
	Operators   []Operator
	Inputs      []int // tensor indices of the graph inputs
	Outputs     []int
}

// ReadFile reads and parses the model at path. Errors start with the path.
func ReadFile(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// Drop PathError's own "open <path>:" so the path is not repeated.
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: tflite: %s: %w", path, pe.Op, pe.Err)
		}
		return nil, fmt.Errorf("%s: tflite: %w", path, err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Float32s decodes the tensor's constant data (little-endian float32).
func (t Tensor) Float32s() ([]float32, error) {
	n, err := t.check(Float32)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// Int32s decodes INT32 constant data, e.g. the shape operand of RESHAPE.
func (t Tensor) Int32s() ([]int32, error) {
	n, err := t.check(Int32)
	if err != nil {
		return nil, err
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// check returns the element count after checking the type and that the
// 4-byte elements exactly fill Data.
func (t Tensor) check(want TensorType) (int64, error) {
	if t.Type != want {
		return 0, fmt.Errorf("tflite: tensor %q is %s, not %s", t.Name, t.Type, want)
	}
	n, ok := numElements(t.Shape)
	if !ok || int64(len(t.Data)) != 4*n {
		return 0, fmt.Errorf("tflite: tensor %q has %d data bytes, want 4 per element of shape %v",
			t.Name, len(t.Data), t.Shape)
	}
	return n, nil
}

// numElements is the product of shape, false if a dimension is negative or
// the product exceeds anything a 2 GiB flatbuffer could hold.
func numElements(shape []int32) (int64, bool) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		n *= int64(d)
		if n > math.MaxInt32 {
			return 0, false
		}
	}
	return n, true
}
