package head

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Binary format, version 1 (all integers and floats little-endian):
//
//	offset  size  field
//	0       4     magic "EDHD"
//	4       2     format version (1)
//	6       2     number of layers L (1..MaxLayers)
//	8       4     dimension D (1..MaxDim)
//	12      4     flags (0; reserved)
//	16      ...   per layer: W (D*D float32, row-major [in][out]), B (D float32),
//	              then Alpha (D float32) for every layer but the last
//	end-4   4     CRC-32C (Castagnoli) of every preceding byte
//
// The size is fully determined by L and D, so a truncated or padded blob is
// detected before the checksum is even read.
const (
	magic         = "EDHD"
	formatVersion = 1
	headerSize    = 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Marshal encodes the head in the versioned binary format.
func (h *Head) Marshal() ([]byte, error) {
	if h == nil || len(h.layers) == 0 {
		return nil, fmt.Errorf("%w: empty head", ErrShape)
	}
	buf := make([]byte, 0, encodedSize(h.dim, len(h.layers)))
	buf = append(buf, magic...)
	buf = binary.LittleEndian.AppendUint16(buf, formatVersion)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(h.layers)))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(h.dim))
	buf = binary.LittleEndian.AppendUint32(buf, 0)
	for _, l := range h.layers {
		buf = appendFloats(buf, l.W)
		buf = appendFloats(buf, l.B)
		if l.Alpha != nil {
			buf = appendFloats(buf, l.Alpha)
		}
	}
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
	return buf, nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (h *Head) MarshalBinary() ([]byte, error) { return h.Marshal() }

// Unmarshal decodes a head written by Marshal. Every malformed input is an
// error wrapping ErrCorrupt, ErrChecksum or ErrVersion.
func Unmarshal(data []byte) (*Head, error) {
	if len(data) < headerSize+4 {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrCorrupt, len(data))
	}
	if string(data[:4]) != magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorrupt, data[:4])
	}
	if v := binary.LittleEndian.Uint16(data[4:]); v != formatVersion {
		return nil, fmt.Errorf("%w: version %d (this build reads %d)", ErrVersion, v, formatVersion)
	}
	nl := int(binary.LittleEndian.Uint16(data[6:]))
	dim := int(binary.LittleEndian.Uint32(data[8:]))
	if nl < 1 || nl > MaxLayers {
		return nil, fmt.Errorf("%w: %d layers not in [1, %d]", ErrCorrupt, nl, MaxLayers)
	}
	if dim < 1 || dim > MaxDim {
		return nil, fmt.Errorf("%w: dimension %d not in [1, %d]", ErrCorrupt, dim, MaxDim)
	}
	if flags := binary.LittleEndian.Uint32(data[12:]); flags != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	if want := encodedSize(dim, nl); len(data) != want {
		return nil, fmt.Errorf("%w: %d bytes, want %d for %d layers of dimension %d", ErrCorrupt, len(data), want, nl, dim)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, fmt.Errorf("%w: stored %08x, computed %08x", ErrChecksum, sum, got)
	}
	p := body[headerSize:]
	layers := make([]Layer, nl)
	for l := range layers {
		layers[l].W, p = readFloats(p, dim*dim)
		layers[l].B, p = readFloats(p, dim)
		if l < nl-1 {
			layers[l].Alpha, p = readFloats(p, dim)
		}
	}
	h, err := FromLayers(dim, layers)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return h, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (h *Head) UnmarshalBinary(data []byte) error {
	got, err := Unmarshal(data)
	if err != nil {
		return err
	}
	*h = *got
	return nil
}

func encodedSize(dim, layers int) int {
	perLayer := 4 * (dim*dim + dim)
	return headerSize + layers*perLayer + (layers-1)*4*dim + 4
}

func appendFloats(buf []byte, v []float32) []byte {
	for _, x := range v {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
	}
	return buf
}

func readFloats(p []byte, n int) ([]float32, []byte) {
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	return out, p[4*n:]
}
