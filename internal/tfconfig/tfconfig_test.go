package tfconfig

import (
	"encoding/hex"
	"testing"
)

// TestMarshalGolden compares Marshal with the bytes the protobuf library
// writes for the same messages. They were produced once with
// protobuf 7.36.2 (Python) from a .proto holding the three fields as
// tensorflow/core/protobuf/config.proto declares them:
//
//	syntax = "proto3";
//	package tensorflow;
//	message ConfigProto {
//	  int32 intra_op_parallelism_threads = 2;
//	  int32 inter_op_parallelism_threads = 5;
//	  bool use_per_session_threads = 9;
//	}
//
// compiled with `python -m grpc_tools.protoc --python_out=. config.proto`,
// then config_pb2.ConfigProto(**fields).SerializeToString(deterministic=True).hex().
func TestMarshalGolden(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, ""},
		{Config{IntraOpThreads: 4, InterOpThreads: 1}, "10042801"},                                       // infer's default
		{Config{IntraOpThreads: 300}, "10ac02"},                                                          // two-byte varint
		{Config{InterOpThreads: 5}, "2805"},                                                              // intra left to TF
		{Config{IntraOpThreads: 2, InterOpThreads: 1, PerSessionThreads: true}, "100228014801"},          // finetune's trainer
		{Config{IntraOpThreads: 100000, InterOpThreads: 2, PerSessionThreads: true}, "10a08d0628024801"}, // three-byte varint
	} {
		if got := hex.EncodeToString(tc.c.Marshal()); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.c, got, tc.want)
		}
	}
}
