// Package tfconfig encodes the few fields of tensorflow.ConfigProto that
// edged sets on its TensorFlow sessions. The TF C API takes the serialized
// message; hand-encoding a few varints avoids a protobuf dependency. Pure
// Go: infer and finetune both use it.
package tfconfig

// Config holds the ConfigProto fields edged sets (tensorflow/core/protobuf/
// config.proto):
//
//	int32 intra_op_parallelism_threads = 2;
//	int32 inter_op_parallelism_threads = 5;
//	bool  use_per_session_threads = 9;
//
// Zero values are left out, as proto3 does (TF reads 0 as "its default").
type Config struct {
	// IntraOpThreads caps the threads one op uses.
	IntraOpThreads int
	// InterOpThreads caps the ops run at once.
	InterOpThreads int
	// PerSessionThreads gives the session its own thread pools, so its
	// caps neither resize nor are overridden by the process-wide pools
	// another session created first.
	PerSessionThreads bool
}

// Marshal returns the serialized ConfigProto, fields in number order (the
// bytes the protobuf library writes for the same message).
func (c Config) Marshal() []byte {
	var b []byte
	field := func(num int, v uint64) {
		b = appendVarint(b, uint64(num)<<3) // wire type 0: varint
		b = appendVarint(b, v)
	}
	if c.IntraOpThreads > 0 {
		field(2, uint64(c.IntraOpThreads))
	}
	if c.InterOpThreads > 0 {
		field(5, uint64(c.InterOpThreads))
	}
	if c.PerSessionThreads {
		field(9, 1)
	}
	return b
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
