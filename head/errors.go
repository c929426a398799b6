package head

import "errors"

var (
	// ErrCorrupt is returned by Unmarshal when the data is truncated, has the
	// wrong magic, impossible sizes, or non-finite parameters.
	ErrCorrupt = errors.New("corrupt head data")
	// ErrChecksum is returned by Unmarshal when the stored CRC-32C does not
	// match the content (bit rot, truncated copy, foreign file).
	ErrChecksum = errors.New("head checksum mismatch")
	// ErrVersion is returned by Unmarshal for a format version this build
	// does not know (written by a newer edged).
	ErrVersion = errors.New("unsupported head format version")
	// ErrShape is returned when layer parameters do not have the sizes the
	// head's dimension requires, or the layer count is out of range.
	ErrShape = errors.New("invalid head shape")
	// ErrDim is returned by ProjectChecked when the input vector does not
	// have the head's input dimension.
	ErrDim = errors.New("embedding dimension does not match the head")
)
