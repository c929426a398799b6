package tflite

import (
	"math"
	"sort"
	"strings"
)

// schemaVersion is the only Model.version the TFLite runtime itself accepts;
// older versions encoded some operators differently.
const schemaVersion = 3

// optionsType is the BuiltinOptions union type each supported operator
// carries (0: it has none). ABS may carry an empty AbsOptions.
var optionsType = map[Op]uint8{
	Conv2D: 1, DepthwiseConv2D: 2, Add: 11, Reshape: 17, Mul: 21, Sub: 28, Abs: 78, Relu: 0,
}

var supportedList = func() string {
	var names []string
	for op := range optionsType {
		names = append(names, op.String())
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}()

// opcode is one resolved OperatorCode entry.
type opcode struct {
	op     Op
	custom string
}

// Parse decodes a TFLite model. It never panics; its allocations are bounded
// by a small multiple of len(data). Errors wrap ErrFormat or ErrUnsupported.
func Parse(data []byte) (*Model, error) {
	if len(data) < 8 {
		return nil, formatf("file is %d bytes, too short for a TFLite header", len(data))
	}
	if len(data) > math.MaxInt32 {
		return nil, formatf("file is %d bytes, larger than a flatbuffer can be", len(data))
	}
	if id := string(data[4:8]); id != "TFL3" {
		return nil, formatf("file identifier is %q, want \"TFL3\" (not a TFLite model)", id)
	}
	d := &decoder{b: data, budget: int64(len(data)) + 1024}
	return d.model(d.table(int64(le.Uint32(data))))
}

func (d *decoder) model(root table) (*Model, error) {
	m := &Model{Version: d.u32(root, 0, 0), Description: d.str(root, 3)}
	if d.err != nil {
		return nil, in(d.err, "model")
	}
	if m.Version != schemaVersion {
		return nil, unsupportedf("schema version %d, want %d", m.Version, schemaVersion)
	}
	codes, err := d.opcodes(root)
	if err != nil {
		return nil, err
	}
	buffers, err := d.buffers(root)
	if err != nil {
		return nil, err
	}
	n, subgraph := d.tables(root, 2)
	switch {
	case d.err != nil:
		return nil, in(d.err, "subgraphs")
	case n == 0:
		return nil, formatf("model has no subgraphs")
	case n > 1:
		return nil, unsupportedf("model has %d subgraphs, only single-subgraph models are supported", n)
	}
	sg := subgraph(0)
	if d.err != nil {
		return nil, in(d.err, "subgraph 0")
	}
	if m.Tensors, err = d.tensors(sg, buffers); err != nil {
		return nil, err
	}
	if m.Inputs, err = d.indices(sg, 1, len(m.Tensors), false); err != nil {
		return nil, in(err, "subgraph inputs")
	}
	if m.Outputs, err = d.indices(sg, 2, len(m.Tensors), false); err != nil {
		return nil, in(err, "subgraph outputs")
	}
	if m.Operators, err = d.operators(sg, codes, len(m.Tensors)); err != nil {
		return nil, err
	}
	return m, nil
}

func (d *decoder) opcodes(root table) ([]opcode, error) {
	n, at := d.tables(root, 1)
	codes := make([]opcode, n)
	for i := range codes {
		t := at(i)
		// Files written before builtin_code existed store the code only in
		// the int8 deprecated field; newer ones clamp that field at 127.
		codes[i].op = Op(max(int32(int8(d.u8(t, 0, 0))), d.i32(t, 3, 0)))
		codes[i].custom = d.str(t, 1)
		if d.err == nil && codes[i].op < 0 {
			d.fail(formatf("negative builtin code %d", codes[i].op))
		}
		if d.err != nil {
			return nil, in(d.err, "operator code %d", i)
		}
	}
	return codes, in(d.err, "operator codes")
}

// buffers returns each buffer's data (nil when empty).
func (d *decoder) buffers(root table) ([][]byte, error) {
	n, at := d.tables(root, 4)
	bufs := make([][]byte, n)
	for i := range bufs {
		t := at(i)
		bufs[i] = d.bytes(t, 0)
		off := d.u64(t, 1)
		if d.err != nil {
			return nil, in(d.err, "buffer %d", i)
		}
		if off != 0 {
			// Only models over 2 GB keep data after the flatbuffer.
			return nil, unsupportedf("buffer %d is stored outside the flatbuffer (offset %d); "+
				"models larger than 2 GB are not supported", i, off)
		}
	}
	return bufs, in(d.err, "buffers")
}

func (d *decoder) tensors(sg table, buffers [][]byte) ([]Tensor, error) {
	n, at := d.tables(sg, 0)
	tensors := make([]Tensor, n)
	for i := range tensors {
		if err := d.tensor(at(i), &tensors[i], buffers); err != nil {
			return nil, in(err, "tensor %d (%q)", i, tensors[i].Name)
		}
	}
	return tensors, in(d.err, "tensors")
}

func (d *decoder) tensor(t table, out *Tensor, buffers [][]byte) error {
	out.Name = d.str(t, 3)
	out.Shape = d.int32s(t, 0)
	out.Type = TensorType(int8(d.u8(t, 1, 0)))
	buf := d.u32(t, 2, 0)
	sparse := d.field(t, 6, 4) != 0
	external := d.u32(t, 10, 0)
	switch {
	case d.err != nil:
		return d.err
	case int64(buf) >= int64(len(buffers)):
		return formatf("buffer index %d out of range (%d buffers)", buf, len(buffers))
	case sparse:
		return unsupportedf("sparse tensors are not supported")
	case external != 0:
		return unsupportedf("external buffers are not supported")
	}
	out.Data = buffers[buf]
	if size := out.Type.size(); len(out.Data) > 0 && size > 0 {
		n, ok := numElements(out.Shape)
		if !ok || int64(len(out.Data)) != size*n {
			return formatf("%d data bytes do not match %s%v", len(out.Data), out.Type, out.Shape)
		}
	}
	return nil
}

// indices decodes a vector of tensor indices, each in [0, n), or -1 if
// optional is set.
func (d *decoder) indices(t table, id, n int, optional bool) ([]int, error) {
	raw := d.int32s(t, id)
	if d.err != nil {
		return nil, d.err
	}
	out := make([]int, len(raw))
	for i, v := range raw {
		if (v < 0 || int(v) >= n) && !(optional && v == -1) {
			return nil, formatf("tensor index %d out of range (%d tensors)", v, n)
		}
		out[i] = int(v)
	}
	return out, nil
}

func (d *decoder) operators(sg table, codes []opcode, numTensors int) ([]Operator, error) {
	n, at := d.tables(sg, 3)
	ops := make([]Operator, n)
	for i := range ops {
		t := at(i)
		idx := d.u32(t, 0, 0)
		if d.err == nil && int64(idx) >= int64(len(codes)) {
			d.fail(formatf("opcode index %d out of range (%d operator codes)", idx, len(codes)))
		}
		if d.err != nil {
			return nil, in(d.err, "operator %d", i)
		}
		code := codes[idx]
		if code.op == custom {
			return nil, unsupportedf("operator %d is custom operator %q, not supported (supported: %s)",
				i, code.custom, supportedList)
		}
		if _, ok := optionsType[code.op]; !ok {
			return nil, unsupportedf("operator %d is %s (builtin %d), not supported (supported: %s)",
				i, code.op, int32(code.op), supportedList)
		}
		ops[i].Op = code.op
		if err := d.operator(t, &ops[i], numTensors); err != nil {
			return nil, in(err, "operator %d", i)
		}
	}
	return ops, in(d.err, "operators")
}

func (d *decoder) operator(t table, op *Operator, numTensors int) error {
	var err error
	if op.Inputs, err = d.indices(t, 1, numTensors, true); err != nil {
		return in(err, "%s inputs", op.Op)
	}
	if op.Outputs, err = d.indices(t, 2, numTensors, false); err != nil {
		return in(err, "%s outputs", op.Op)
	}
	typ := d.u8(t, 3, 0)
	pos, present := d.ref(t, 4)
	wantType := optionsType[op.Op]
	switch {
	case d.err != nil:
		return in(d.err, "%s options", op.Op)
	case typ == 0 && (op.Op == Conv2D || op.Op == DepthwiseConv2D):
		// The defaults (stride 0) are not a usable convolution.
		return formatf("%s has no options", op.Op)
	case typ == 0:
		return nil
	case typ != wantType:
		return formatf("%s has options of union type %d, want %d", op.Op, typ, wantType)
	case !present:
		return formatf("%s options of union type %d are missing", op.Op, typ)
	}
	if err := d.options(d.table(pos), op); err != nil {
		return in(err, "%s options", op.Op)
	}
	return nil
}

// options decodes the builtin options table of a supported operator.
func (d *decoder) options(t table, op *Operator) error {
	var act uint8
	switch op.Op {
	case Conv2D, DepthwiseConv2D:
		// DepthwiseConv2DOptions is Conv2DOptions with depth_multiplier
		// inserted as field 3.
		next := 3
		if op.Op == DepthwiseConv2D {
			op.DepthMultiplier = int(d.i32(t, 3, 0))
			next = 4
		}
		op.Padding = Padding(int8(d.u8(t, 0, 0)))
		op.StrideW, op.StrideH = int(d.i32(t, 1, 0)), int(d.i32(t, 2, 0))
		act = d.u8(t, next, 0)
		op.DilationW, op.DilationH = int(d.i32(t, next+1, 1)), int(d.i32(t, next+2, 1))
		switch {
		case d.err != nil:
			return d.err
		case op.StrideW < 1 || op.StrideH < 1 || op.DilationW < 1 || op.DilationH < 1:
			return formatf("stride %dx%d, dilation %dx%d: must be positive",
				op.StrideW, op.StrideH, op.DilationW, op.DilationH)
		case op.Padding != PaddingSame && op.Padding != PaddingValid:
			return unsupportedf("%s", op.Padding)
		}
	case Add, Sub, Mul:
		act = d.u8(t, 0, 0)
	case Reshape:
		op.NewShape = d.int32s(t, 0)
	}
	if d.err != nil {
		return d.err
	}
	op.Activation = Activation(int8(act))
	switch op.Activation {
	case ActNone, ActRelu, ActRelu6:
		return nil
	}
	return unsupportedf("fused activation %s is not supported (supported: NONE, RELU, RELU6)", op.Activation)
}
