package tflite

import (
	"encoding/binary"
	"math"
)

// fbBuilder lays out a flatbuffer front to back, just enough to build small
// TFLite models for tests. Each table is written before the objects it refers
// to, so every uoffset points forward as the format requires; references are
// patched once the referenced object has been written.
type fbBuilder struct{ buf []byte }

// fbObj writes an object (table, vector, string) and returns its position.
type fbObj func(b *fbBuilder) int

// fbVal is a table field: a scalar of size bytes, a reference, or absent.
type fbVal struct {
	size int
	bits uint64
	obj  fbObj
}

func u8v(v uint8) fbVal      { return fbVal{size: 1, bits: uint64(v)} }
func i32v(v int32) fbVal     { return fbVal{size: 4, bits: uint64(uint32(v))} }
func u32v(v uint32) fbVal    { return fbVal{size: 4, bits: uint64(v)} }
func u64v(v uint64) fbVal    { return fbVal{size: 8, bits: v} }
func objv(o fbObj) fbVal     { return fbVal{size: 4, obj: o} }
func absent() fbVal          { return fbVal{} }
func (b *fbBuilder) at() int { return len(b.buf) }

func (b *fbBuilder) pad(n int) {
	for len(b.buf)%n != 0 {
		b.buf = append(b.buf, 0)
	}
}

func (b *fbBuilder) put32(pos int, v uint32) { binary.LittleEndian.PutUint32(b.buf[pos:], v) }

func (b *fbBuilder) add(size int, v uint64) {
	var tmp [8]byte
	binary.LittleEndian.PutUint64(tmp[:], v)
	b.buf = append(b.buf, tmp[:size]...)
}

// patch stores at pos the uoffset to the object obj writes now.
func (b *fbBuilder) patch(pos int, obj fbObj) {
	b.put32(pos, uint32(obj(b)-pos))
}

// table writes a vtable followed by the table; field i has id i.
func (b *fbBuilder) table(fields ...fbVal) int {
	offs := make([]int, len(fields))
	size := 4
	for i, f := range fields {
		if f.size != 0 {
			offs[i] = size
			size += f.size
		}
	}
	b.pad(2)
	vt := b.at()
	b.add(2, uint64(4+2*len(fields)))
	b.add(2, uint64(size))
	for _, o := range offs {
		b.add(2, uint64(o))
	}
	b.pad(4)
	pos := b.at()
	b.add(4, uint64(uint32(pos-vt)))
	for _, f := range fields {
		b.add(f.size, f.bits)
	}
	for i, f := range fields {
		if f.obj != nil {
			b.patch(pos+offs[i], f.obj)
		}
	}
	return pos
}

func tbl(fields ...fbVal) fbObj { return func(b *fbBuilder) int { return b.table(fields...) } }

func vecI32(vals []int32) fbObj {
	return func(b *fbBuilder) int {
		b.pad(4)
		pos := b.at()
		b.add(4, uint64(len(vals)))
		for _, v := range vals {
			b.add(4, uint64(uint32(v)))
		}
		return pos
	}
}

func vecBytes(data []byte) fbObj {
	return func(b *fbBuilder) int {
		b.pad(4)
		pos := b.at()
		b.add(4, uint64(len(data)))
		b.buf = append(b.buf, data...)
		return pos
	}
}

// strv is a string field: length, bytes, NUL.
func strv(s string) fbVal {
	return objv(func(b *fbBuilder) int {
		pos := vecBytes([]byte(s))(b)
		b.buf = append(b.buf, 0)
		return pos
	})
}

func vecTables(objs ...fbObj) fbObj {
	return func(b *fbBuilder) int {
		b.pad(4)
		pos := b.at()
		b.add(4, uint64(len(objs)))
		for range objs {
			b.add(4, 0)
		}
		for i, o := range objs {
			b.patch(pos+4+4*i, o)
		}
		return pos
	}
}

// vecSame is a vector of n references to one shared object.
func vecSame(n int, o fbObj) fbObj {
	return func(b *fbBuilder) int {
		b.pad(4)
		pos := b.at()
		b.add(4, uint64(n))
		b.buf = append(b.buf, make([]byte, 4*n)...)
		target := o(b)
		for i := 0; i < n; i++ {
			b.put32(pos+4+4*i, uint32(target-(pos+4+4*i)))
		}
		return pos
	}
}

type tTensor struct {
	name   string
	shape  []int32
	typ    TensorType
	buffer uint32
}

type tOp struct {
	opcode   uint32
	in, out  []int32
	optType  uint8
	opts     []fbVal // nil: no options table
	override []fbVal // if set, the whole Operator table
}

// tModel describes a model for fbBuilder; build() encodes it.
type tModel struct {
	ident      string
	version    uint32
	codes      []int32 // builtin codes, stored in builtin_code
	deprecated []int8  // if set, stored in deprecated_builtin_code instead
	custom     string  // custom_code of every opcode
	tensors    []tTensor
	buffers    []fbObj // Buffer tables
	ops        []tOp
	inputs     []int32
	outputs    []int32
	subgraphs  int
}

func (m tModel) build() []byte {
	b := &fbBuilder{buf: make([]byte, 8)}
	copy(b.buf[4:8], m.ident)
	var codes []fbObj
	for i, c := range m.codes {
		dep := int8(min(c, 127))
		if m.deprecated != nil {
			dep, c = m.deprecated[i], 0
		}
		custom := absent()
		if m.custom != "" {
			custom = strv(m.custom)
		}
		codes = append(codes, tbl(u8v(uint8(dep)), custom, i32v(1), i32v(c)))
	}
	var tensors, ops []fbObj
	for _, t := range m.tensors {
		tensors = append(tensors, tbl(objv(vecI32(t.shape)), u8v(uint8(t.typ)), u32v(t.buffer), strv(t.name)))
	}
	for _, o := range m.ops {
		f := []fbVal{u32v(o.opcode), objv(vecI32(o.in)), objv(vecI32(o.out))}
		if o.opts != nil {
			f = append(f, u8v(o.optType), objv(tbl(o.opts...)))
		}
		if o.override != nil {
			f = o.override
		}
		ops = append(ops, tbl(f...))
	}
	sg := tbl(objv(vecTables(tensors...)), objv(vecI32(m.inputs)), objv(vecI32(m.outputs)),
		objv(vecTables(ops...)), strv("main"))
	sgs := make([]fbObj, m.subgraphs)
	for i := range sgs {
		sgs[i] = sg
	}
	root := b.table(u32v(m.version), objv(vecTables(codes...)), objv(vecTables(sgs...)),
		strv("test model"), objv(vecTables(m.buffers...)))
	b.put32(0, uint32(root))
	return b.buf
}

func dataBuffer(data []byte) fbObj { return tbl(objv(vecBytes(data))) }

func f32bytes(vals ...float32) []byte {
	out := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

// addModel is y = RELU(x + c) with c a constant [1 4] tensor.
func addModel() tModel {
	return tModel{
		ident:   "TFL3",
		version: 3,
		codes:   []int32{int32(Add)},
		tensors: []tTensor{
			{"x", []int32{1, 4}, Float32, 1},
			{"c", []int32{1, 4}, Float32, 2},
			{"y", []int32{1, 4}, Float32, 0},
		},
		buffers: []fbObj{tbl(), tbl(), dataBuffer(f32bytes(1, 2, 3, 4))},
		ops: []tOp{{opcode: 0, in: []int32{0, 1}, out: []int32{2},
			optType: 11, opts: []fbVal{u8v(uint8(ActRelu))}}},
		inputs:    []int32{0},
		outputs:   []int32{2},
		subgraphs: 1,
	}
}

// convModel is y = DEPTHWISE(CONV_2D(x)), exercising both option tables.
func convModel() tModel {
	w := make([]float32, 2*3*3*1)
	dw := make([]float32, 1*3*3*2)
	return tModel{
		ident:   "TFL3",
		version: 3,
		codes:   []int32{int32(Conv2D), int32(DepthwiseConv2D)},
		tensors: []tTensor{
			{"x", []int32{1, 8, 8, 1}, Float32, 0},
			{"w", []int32{2, 3, 3, 1}, Float32, 1},
			{"h", []int32{1, 3, 3, 2}, Float32, 0},
			{"dw", []int32{1, 3, 3, 2}, Float32, 2},
			{"y", []int32{1, 3, 3, 2}, Float32, 0},
		},
		buffers: []fbObj{tbl(), dataBuffer(f32bytes(w...)), dataBuffer(f32bytes(dw...))},
		ops: []tOp{
			{opcode: 0, in: []int32{0, 1, -1}, out: []int32{2}, optType: 1,
				opts: []fbVal{u8v(uint8(PaddingValid)), i32v(2), i32v(3), u8v(uint8(ActRelu6))}},
			{opcode: 1, in: []int32{2, 3, -1}, out: []int32{4}, optType: 2,
				opts: []fbVal{u8v(0), i32v(1), i32v(1), i32v(1), u8v(0), i32v(2), i32v(2)}},
		},
		inputs:    []int32{0},
		outputs:   []int32{4},
		subgraphs: 1,
	}
}
