package infer

// sessionConfig encodes the few fields of tensorflow.ConfigProto we set (the
// TF C API takes the serialized message; hand-encoding three varints avoids a
// protobuf dependency):
//
//	int32 intra_op_parallelism_threads = 2;
//	int32 inter_op_parallelism_threads = 5;
func sessionConfig(intraOp, interOp int) []byte {
	var b []byte
	field := func(num int, v uint64) {
		b = appendVarint(b, uint64(num)<<3) // wire type 0: varint
		b = appendVarint(b, v)
	}
	if intraOp > 0 {
		field(2, uint64(intraOp))
	}
	if interOp > 0 {
		field(5, uint64(interOp))
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
