package tflite

import (
	"encoding/binary"
	"fmt"
)

// This file is a minimal, bounds-checked flatbuffer decoder. Positions are
// absolute byte offsets into the file; a position plus a 32-bit offset is
// computed in int64 so nothing can wrap, and every read is preceded by a
// check that the bytes exist.
//
// Errors are sticky: the first one is kept in decoder.err and from then on
// every accessor returns zero values. That keeps the table-walking code free
// of an error check per field; callers check d.err once per object to add
// context ("tensor 17: shape: ...").

var le = binary.LittleEndian

// parseError carries its kind (ErrFormat or ErrUnsupported) for errors.Is
// while keeping the message free of the sentinel's text.
type parseError struct {
	kind error
	msg  string
}

func (e *parseError) Error() string { return "tflite: " + e.msg }
func (e *parseError) Unwrap() error { return e.kind }

func formatf(format string, a ...any) error {
	return &parseError{ErrFormat, fmt.Sprintf(format, a...)}
}

func unsupportedf(format string, a ...any) error {
	return &parseError{ErrUnsupported, fmt.Sprintf(format, a...)}
}

// in prefixes err's message with where it happened, keeping its kind.
func in(err error, format string, a ...any) error {
	if pe, ok := err.(*parseError); ok {
		return &parseError{pe.kind, fmt.Sprintf(format, a...) + ": " + pe.msg}
	}
	return err
}

type decoder struct {
	b   []byte
	err error
	// budget bounds the vector elements and string bytes copied out of the
	// file. Flatbuffers may share one vector between many tables, so without
	// it a small file could make us decode one large vector millions of
	// times. A file without sharing never needs more than len(b).
	budget int64
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) has(pos, n int64) bool {
	return pos >= 0 && n >= 0 && pos <= int64(len(d.b)) && n <= int64(len(d.b))-pos
}

// table is a validated table: its inline bytes and vtable lie in the file.
// The zero table (returned on error) has no fields.
type table struct {
	pos, vt, vtSize, size int
}

func (d *decoder) table(pos int64) table {
	if d.err != nil {
		return table{}
	}
	if !d.has(pos, 4) {
		d.fail(formatf("table at %#x is past the end of the file (%d bytes)", pos, len(d.b)))
		return table{}
	}
	vt := pos - int64(int32(le.Uint32(d.b[pos:])))
	if !d.has(vt, 4) {
		d.fail(formatf("table at %#x: vtable at %#x is outside the file", pos, vt))
		return table{}
	}
	vtSize, size := int64(le.Uint16(d.b[vt:])), int64(le.Uint16(d.b[vt+2:]))
	if vtSize < 4 || vtSize%2 != 0 || !d.has(vt, vtSize) || size < 4 || !d.has(pos, size) {
		d.fail(formatf("table at %#x: vtable at %#x (size %d) or table size %d out of bounds", pos, vt, vtSize, size))
		return table{}
	}
	return table{int(pos), int(vt), int(vtSize), int(size)}
}

// field returns the position of field id, holding n bytes, or 0 if absent
// (the caller then uses the schema default).
func (d *decoder) field(t table, id, n int) int {
	slot := 4 + 2*id
	if d.err != nil || slot+2 > t.vtSize {
		return 0 // a short vtable: written by an older schema version
	}
	off := int(le.Uint16(d.b[t.vt+slot:]))
	if off == 0 {
		return 0
	}
	if off < 4 || off+n > t.size {
		d.fail(formatf("field %d at offset %d does not fit in a %d-byte table", id, off, t.size))
		return 0
	}
	return t.pos + off
}

func (d *decoder) u8(t table, id int, def uint8) uint8 {
	if p := d.field(t, id, 1); p != 0 {
		return d.b[p]
	}
	return def
}

func (d *decoder) u32(t table, id int, def uint32) uint32 {
	if p := d.field(t, id, 4); p != 0 {
		return le.Uint32(d.b[p:])
	}
	return def
}

func (d *decoder) i32(t table, id int, def int32) int32 { return int32(d.u32(t, id, uint32(def))) }

func (d *decoder) u64(t table, id int) uint64 {
	if p := d.field(t, id, 8); p != 0 {
		return le.Uint64(d.b[p:])
	}
	return 0
}

// deref follows the uoffset stored at p, which must hold 4 bytes.
func (d *decoder) deref(p int) int64 {
	target := int64(p) + int64(le.Uint32(d.b[p:]))
	if target >= int64(len(d.b)) {
		d.fail(formatf("offset at %#x points past the end of the file", p))
	}
	return target
}

// ref follows the offset in field id; false when the field is absent.
func (d *decoder) ref(t table, id int) (int64, bool) {
	p := d.field(t, id, 4)
	if p == 0 {
		return 0, false
	}
	target := d.deref(p)
	return target, d.err == nil
}

// vector returns the position of the first element and the element count of
// vector field id, having checked that n*elem bytes follow. Absent is n = 0.
func (d *decoder) vector(t table, id, elem int) (start, n int) {
	p, ok := d.ref(t, id)
	if !ok {
		return 0, 0
	}
	if !d.has(p, 4) {
		d.fail(formatf("field %d: vector length at %#x is past the end of the file", id, p))
		return 0, 0
	}
	n64 := int64(le.Uint32(d.b[p:]))
	if !d.has(p+4, n64*int64(elem)) {
		d.fail(formatf("field %d: vector of %d×%d bytes at %#x runs past the end of the file (%d bytes)",
			id, n64, elem, p, len(d.b)))
		return 0, 0
	}
	return int(p + 4), int(n64)
}

// spend charges n decoded items against the budget; false when exhausted.
func (d *decoder) spend(n int) bool {
	d.budget -= int64(n)
	if d.budget < 0 {
		d.fail(formatf("decoded vectors exceed the file size (one vector shared by too many tables)"))
	}
	return d.err == nil
}

// bytes returns a vector of bytes as a sub-slice of the file (nil if empty),
// capped so that appending to it cannot overwrite the file.
func (d *decoder) bytes(t table, id int) []byte {
	start, n := d.vector(t, id, 1)
	if n == 0 {
		return nil
	}
	return d.b[start : start+n : start+n]
}

func (d *decoder) str(t table, id int) string {
	b := d.bytes(t, id)
	if !d.spend(len(b)) {
		return ""
	}
	return string(b)
}

func (d *decoder) int32s(t table, id int) []int32 {
	start, n := d.vector(t, id, 4)
	if n == 0 || !d.spend(n) {
		return nil
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(le.Uint32(d.b[start+4*i:]))
	}
	return out
}

// tables returns the length of a vector of tables and a function decoding
// element i, so callers need not hold all table headers at once.
func (d *decoder) tables(t table, id int) (n int, at func(i int) table) {
	start, n := d.vector(t, id, 4)
	if !d.spend(n) {
		n = 0
	}
	return n, func(i int) table {
		if d.err != nil || i < 0 || i >= n {
			return table{}
		}
		return d.table(d.deref(start + 4*i))
	}
}
