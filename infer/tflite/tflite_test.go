package tflite

import (
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// realModel returns the MobileFaceNet file, or skips the test.
func realModel(t *testing.T) (string, []byte) {
	t.Helper()
	var candidates []string
	if dir := os.Getenv("EDGED_MODELS"); dir != "" {
		candidates = append(candidates, filepath.Join(dir, "MobileFaceNet.tflite"))
	}
	candidates = append(candidates, "../../.deps/models/MobileFaceNet.tflite",
		"/tmp/mfn/package/android/src/main/assets/MobileFaceNet.tflite")
	for _, p := range candidates {
		data, err := os.ReadFile(p)
		if err == nil {
			return p, data
		}
	}
	t.Skipf("MobileFaceNet.tflite not found (looked in %s); set EDGED_MODELS to its directory",
		strings.Join(candidates, ", "))
	return "", nil
}

func mustParse(t *testing.T, data []byte) *Model {
	t.Helper()
	m, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

// wantErr checks that err wraps kind and mentions every fragment.
func wantErr(t *testing.T, err, kind error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q does not wrap %v", err, kind)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}

func TestMobileFaceNet(t *testing.T) {
	path, _ := realModel(t)
	m, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 3 || m.Description != "TOCO Converted." {
		t.Errorf("version %d, description %q", m.Version, m.Description)
	}

	counts := map[Op]int{}
	for _, op := range m.Operators {
		counts[op.Op]++
		if op.Activation != ActNone {
			t.Errorf("%s has fused activation %s, want NONE", op.Op, op.Activation)
		}
	}
	wantCounts := map[Op]int{Add: 45, Conv2D: 35, Relu: 33, Abs: 33, Sub: 33, Mul: 33, DepthwiseConv2D: 17, Reshape: 1}
	if len(m.Operators) != 230 || !reflect.DeepEqual(counts, wantCounts) {
		t.Errorf("%d operators %v, want 230 %v", len(m.Operators), counts, wantCounts)
	}

	checkIO := func(what string, idx []int, name string, shape []int32) {
		t.Helper()
		if len(idx) != 1 {
			t.Fatalf("%d %s, want 1", len(idx), what)
		}
		tn := m.Tensors[idx[0]]
		if tn.Name != name || !reflect.DeepEqual(tn.Shape, shape) || tn.Type != Float32 || tn.Data != nil {
			t.Errorf("%s is %q %v %s (%d data bytes), want %q %v FLOAT32 without data",
				what, tn.Name, tn.Shape, tn.Type, len(tn.Data), name, shape)
		}
	}
	checkIO("input", m.Inputs, "input", []int32{2, 112, 112, 3})
	checkIO("output", m.Outputs, "embeddings", []int32{2, 192})

	shapeOf := func(i int) []int32 { return m.Tensors[i].Shape }
	op0 := m.Operators[0]
	if op0.Op != Conv2D || len(op0.Inputs) != 3 || op0.Inputs[0] != m.Inputs[0] {
		t.Fatalf("op 0 is %s with inputs %v, want CONV_2D on the input", op0.Op, op0.Inputs)
	}
	if w, b := shapeOf(op0.Inputs[1]), shapeOf(op0.Inputs[2]); !reflect.DeepEqual(w, []int32{64, 3, 3, 3}) ||
		!reflect.DeepEqual(b, []int32{64}) {
		t.Errorf("op 0 weights %v bias %v, want [64 3 3 3] [64]", w, b)
	}
	if op0.StrideW != 2 || op0.StrideH != 2 || op0.Padding != PaddingSame || op0.DilationW != 1 || op0.DilationH != 1 {
		t.Errorf("op 0 options %+v, want stride 2 SAME dilation 1", op0)
	}

	firstDW := -1
	for i, op := range m.Operators {
		switch {
		case op.Op == DepthwiseConv2D && firstDW < 0:
			firstDW = i
			if w := shapeOf(op.Inputs[1]); !reflect.DeepEqual(w, []int32{1, 3, 3, 64}) || op.DepthMultiplier != 1 {
				t.Errorf("first DEPTHWISE_CONV_2D (op %d): weights %v, multiplier %d; want [1 3 3 64], 1",
					i, w, op.DepthMultiplier)
			}
		case op.Op == Reshape:
			if !reflect.DeepEqual(op.NewShape, []int32{2, 192}) {
				t.Errorf("RESHAPE new shape %v, want [2 192]", op.NewShape)
			}
			shape, err := m.Tensors[op.Inputs[1]].Int32s()
			if err != nil || !reflect.DeepEqual(shape, []int32{2, 192}) {
				t.Errorf("RESHAPE shape operand %v, %v; want [2 192]", shape, err)
			}
		}
	}
	if firstDW != 6 {
		t.Errorf("first DEPTHWISE_CONV_2D is op %d, want 6", firstDW)
	}

	total, weights := 0, 0
	for _, tn := range m.Tensors {
		if tn.Data == nil || tn.Type != Float32 {
			continue
		}
		vals, err := tn.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("tensor %q holds %v", tn.Name, v)
			}
		}
		total += len(vals)
		weights++
	}
	t.Logf("%d tensors, %d float32 constant tensors, %d float32 weights", len(m.Tensors), weights, total)
	if weights != 137 || total != 1292992 {
		t.Errorf("%d constant tensors with %d values, want 137 with 1292992", weights, total)
	}
}

// TestTruncatedRealFile cuts the file at many points: every cut must be
// reported as ErrFormat, never a panic or a silently shorter model. (The last
// 8 bytes of MobileFaceNet.tflite are an OperatorCode table nothing refers
// to, so a cut there is undetectable by any reader; these cuts stop earlier.)
func TestTruncatedRealFile(t *testing.T) {
	_, data := realModel(t)
	var cuts []int
	for i := 0; i < 4096; i++ {
		cuts = append(cuts, i)
	}
	for i := 0; i < 300; i++ {
		cuts = append(cuts, i*len(data)/300)
	}
	for _, n := range cuts {
		if _, err := Parse(data[:n]); !errors.Is(err, ErrFormat) {
			t.Fatalf("cut at %d: got %v, want ErrFormat", n, err)
		}
	}
}

// TestBitFlipsRealFile corrupts random bytes; Parse may succeed or fail but
// must not panic, and a success must still be internally consistent.
func TestBitFlipsRealFile(t *testing.T) {
	_, orig := realModel(t)
	data := append([]byte(nil), orig...)
	// Bias half of the flips towards the tables, which are outside the bulk
	// weight data; find that region from a clean parse.
	m := mustParse(t, data)
	inData := make([]bool, len(data))
	for _, tn := range m.Tensors {
		if len(tn.Data) == 0 {
			continue
		}
		// Data is a sub-slice of data; recover its offset.
		start := int(uintptr(unsafe.Pointer(&tn.Data[0])) - uintptr(unsafe.Pointer(&data[0])))
		for p := start; p < start+len(tn.Data); p++ {
			inData[p] = true
		}
	}
	var structural []int
	for p := range data {
		if !inData[p] {
			structural = append(structural, p)
		}
	}
	t.Logf("%d of %d bytes are outside constant data", len(structural), len(data))
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 3000; i++ {
		var pos []int
		for k := 1 + rng.Intn(4); k > 0; k-- {
			p := rng.Intn(len(data))
			if i%2 == 0 {
				p = structural[rng.Intn(len(structural))]
			}
			pos = append(pos, p)
			data[p] ^= byte(1 << rng.Intn(8))
		}
		if m, err := Parse(data); err == nil {
			checkConsistent(t, m)
		} else if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("flips at %v: error %v wraps neither ErrFormat nor ErrUnsupported", pos, err)
		}
		for _, p := range pos {
			data[p] = orig[p]
		}
	}
}

func TestReadFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.tflite")
	_, err := ReadFile(missing)
	if err == nil || !strings.HasPrefix(err.Error(), missing+": tflite: ") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.tflite")
	if err := os.WriteFile(bad, addModel().build()[:20], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadFile(bad)
	if err == nil || !strings.HasPrefix(err.Error(), bad+": tflite: ") || !errors.Is(err, ErrFormat) {
		t.Errorf("truncated file: %v", err)
	}
}

func TestParseAddModel(t *testing.T) {
	m := mustParse(t, addModel().build())
	if m.Version != 3 || m.Description != "test model" {
		t.Errorf("version %d description %q", m.Version, m.Description)
	}
	if len(m.Tensors) != 3 || m.Tensors[0].Name != "x" || !reflect.DeepEqual(m.Tensors[2].Shape, []int32{1, 4}) {
		t.Fatalf("tensors %+v", m.Tensors)
	}
	if m.Tensors[0].Data != nil || m.Tensors[2].Data != nil {
		t.Errorf("activations have data")
	}
	c, err := m.Tensors[1].Float32s()
	if err != nil || !reflect.DeepEqual(c, []float32{1, 2, 3, 4}) {
		t.Errorf("constant = %v, %v", c, err)
	}
	if _, err := m.Tensors[0].Float32s(); err == nil {
		t.Error("Float32s on a tensor without data succeeded")
	}
	if _, err := m.Tensors[1].Int32s(); err == nil {
		t.Error("Int32s on a FLOAT32 tensor succeeded")
	}
	want := []Operator{{Op: Add, Inputs: []int{0, 1}, Outputs: []int{2}, Activation: ActRelu}}
	if !reflect.DeepEqual(m.Operators, want) {
		t.Errorf("operators %+v, want %+v", m.Operators, want)
	}
	if !reflect.DeepEqual(m.Inputs, []int{0}) || !reflect.DeepEqual(m.Outputs, []int{2}) {
		t.Errorf("inputs %v outputs %v", m.Inputs, m.Outputs)
	}
}

func TestParseConvModel(t *testing.T) {
	m := mustParse(t, convModel().build())
	want := []Operator{
		{Op: Conv2D, Inputs: []int{0, 1, -1}, Outputs: []int{2}, Padding: PaddingValid,
			StrideW: 2, StrideH: 3, DilationW: 1, DilationH: 1, Activation: ActRelu6},
		{Op: DepthwiseConv2D, Inputs: []int{2, 3, -1}, Outputs: []int{4}, Padding: PaddingSame,
			StrideW: 1, StrideH: 1, DilationW: 2, DilationH: 2, DepthMultiplier: 1},
	}
	if !reflect.DeepEqual(m.Operators, want) {
		t.Errorf("operators\n%+v, want\n%+v", m.Operators, want)
	}
	if PaddingValid.String() != "VALID" || Conv2D.String() != "CONV_2D" || ActRelu6.String() != "RELU6" ||
		Int32.String() != "INT32" || Op(999).String() != "BuiltinOperator(999)" {
		t.Error("String methods")
	}
}

// TestDeprecatedBuiltinCode: files from old converters (MobileFaceNet is
// one) only fill deprecated_builtin_code.
func TestDeprecatedBuiltinCode(t *testing.T) {
	mod := addModel()
	mod.deprecated = []int8{int8(Add)}
	if m := mustParse(t, mod.build()); m.Operators[0].Op != Add {
		t.Errorf("op %s, want ADD", m.Operators[0].Op)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(m *tModel)
		kind      error
		fragments []string
	}{
		{"unknown op", func(m *tModel) { m.codes[0] = 14 }, ErrUnsupported,
			[]string{"tflite: operator 0 is LOGISTIC (builtin 14), not supported (supported: ABS, ADD, CONV_2D,"}},
		{"extended op code", func(m *tModel) { m.codes[0] = 150 }, ErrUnsupported, []string{"GELU (builtin 150)"}},
		{"custom op", func(m *tModel) { m.codes[0], m.custom = 32, "MyOp" }, ErrUnsupported, []string{`"MyOp"`}},
		{"wrong identifier", func(m *tModel) { m.ident = "TFL2" }, ErrFormat, []string{`"TFL2"`}},
		{"old schema", func(m *tModel) { m.version = 2 }, ErrUnsupported, []string{"version 2"}},
		{"two subgraphs", func(m *tModel) { m.subgraphs = 2 }, ErrUnsupported, []string{"2 subgraphs"}},
		{"no subgraphs", func(m *tModel) { m.subgraphs = 0 }, ErrFormat, []string{"no subgraphs"}},
		{"op input out of range", func(m *tModel) { m.ops[0].in[1] = 3 }, ErrFormat,
			[]string{"operator 0", "index 3 out of range"}},
		{"op output absent", func(m *tModel) { m.ops[0].out[0] = -1 }, ErrFormat, []string{"outputs"}},
		{"graph output out of range", func(m *tModel) { m.outputs[0] = 9 }, ErrFormat, []string{"subgraph outputs"}},
		{"opcode index out of range", func(m *tModel) { m.ops[0].opcode = 1 }, ErrFormat, []string{"opcode index 1"}},
		{"buffer index out of range", func(m *tModel) { m.tensors[1].buffer = 3 }, ErrFormat,
			[]string{`tensor 1 ("c")`, "buffer index 3"}},
		{"data size mismatch", func(m *tModel) { m.tensors[1].shape = []int32{1, 5} }, ErrFormat,
			[]string{`tensor 1 ("c")`, "16 data bytes"}},
		{"negative dim with data", func(m *tModel) { m.tensors[1].shape = []int32{-1, 4} }, ErrFormat,
			[]string{`"c"`}},
		{"fused TANH", func(m *tModel) { m.ops[0].opts[0] = u8v(uint8(ActTanh)) }, ErrUnsupported,
			[]string{"ADD", "TANH"}},
		{"wrong options type", func(m *tModel) { m.ops[0].optType = 1 }, ErrFormat, []string{"union type 1"}},
		{"external buffer", func(m *tModel) { m.buffers[1] = tbl(absent(), u64v(4096), u64v(16)) },
			ErrUnsupported, []string{"buffer 1", "offset 4096"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := addModel()
			tc.edit(&m)
			_, err := Parse(m.build())
			wantErr(t, err, tc.kind, tc.fragments...)
		})
	}
}

func TestConvOptionErrors(t *testing.T) {
	m := convModel()
	m.ops[0].opts[1] = i32v(0)
	_, err := Parse(m.build())
	wantErr(t, err, ErrFormat, "operator 0", "CONV_2D options", "stride 0x3")

	m = convModel()
	m.ops[1].opts = nil
	_, err = Parse(m.build())
	wantErr(t, err, ErrFormat, "operator 1", "DEPTHWISE_CONV_2D has no options")

	m = convModel()
	m.ops[0].opts[0] = u8v(2)
	_, err = Parse(m.build())
	wantErr(t, err, ErrUnsupported, "Padding(2)")
}

func TestShortAndTruncated(t *testing.T) {
	for n := 0; n < 8; n++ {
		_, err := Parse(make([]byte, n))
		wantErr(t, err, ErrFormat, "too short")
	}
	for _, data := range [][]byte{addModel().build(), convModel().build()} {
		for n := range data {
			if _, err := Parse(data[:n]); !errors.Is(err, ErrFormat) {
				t.Fatalf("cut at %d of %d: got %v, want ErrFormat", n, len(data), err)
			}
		}
	}
}

// TestSharedVectorBudget: a few KB of file whose tensors all share one
// large table must be refused rather than decoded thousands of times.
func TestSharedVectorBudget(t *testing.T) {
	shape := make([]int32, 2000)
	tensor := tbl(objv(vecI32(shape)), u8v(0), u32v(0), strv("t"))
	b := &fbBuilder{buf: make([]byte, 8)}
	copy(b.buf[4:], "TFL3")
	sg := tbl(objv(vecSame(2000, tensor)))
	root := b.table(u32v(3), objv(vecTables()), objv(vecTables(sg)), absent(), objv(vecTables(tbl())))
	b.put32(0, uint32(root))
	_, err := Parse(b.buf)
	wantErr(t, err, ErrFormat, "exceed the file size")
}

// checkConsistent asserts what a successful Parse promises.
func checkConsistent(t testing.TB, m *Model) {
	t.Helper()
	n := len(m.Tensors)
	valid := func(i int, optional bool) bool { return (i >= 0 && i < n) || (optional && i == -1) }
	for i, op := range m.Operators {
		for _, in := range op.Inputs {
			if !valid(in, true) {
				t.Fatalf("operator %d input %d out of range (%d tensors)", i, in, n)
			}
		}
		for _, out := range op.Outputs {
			if !valid(out, false) {
				t.Fatalf("operator %d output %d out of range (%d tensors)", i, out, n)
			}
		}
		if _, ok := optionsType[op.Op]; !ok {
			t.Fatalf("operator %d has unsupported op %s", i, op.Op)
		}
	}
	for _, idx := range append(append([]int(nil), m.Inputs...), m.Outputs...) {
		if !valid(idx, false) {
			t.Fatalf("graph input/output %d out of range (%d tensors)", idx, n)
		}
	}
	for _, tn := range m.Tensors {
		if tn.Type == Float32 && len(tn.Data) > 0 {
			if _, err := tn.check(Float32); err != nil {
				t.Fatalf("parsed tensor does not decode: %v", err)
			}
		}
	}
}
