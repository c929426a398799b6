// Package infer runs edged's face embedding network in TensorFlow: dlib's
// ResNet-29 face recognition model ("dlib_face_recognition_resnet_model_v1",
// LFW 99.38% as published by dlib), with the weights face-api ships
// (@vladmandic/face-api@1.7.15, model/face_recognition_model.bin + manifest,
// MIT). It maps an aligned 150x150 RGB face chip to a raw 128-d embedding in
// which Euclidean distance means identity (same person below about 0.6).
//
// The graph is built with the TF Go op API (github.com/wamuir/graft), so the
// same definition serves inference here and training in package finetune.
// It reproduces face-api's own JavaScript output to within 4e-7 (the golden
// test; the tolerance is 1e-5).
//
// # Usage
//
//	e, err := infer.NewEmbedder(modelDir, infer.Options{}) // zero Options = defaults
//	if err != nil { ... }                                  // wraps ErrModelFile for bad weights
//	defer e.Close()
//	embs, err := e.Embed(chips)                            // []face.Chip -> []face.Embedding
//
// An Embedder is safe for concurrent use: one collector goroutine gathers
// the chips of concurrent Embed calls into batches of up to Options.MaxBatch
// (waiting at most Options.BatchWait for company), runs them in one session
// call and hands each caller its own rows.
//
// # Building the network elsewhere (finetune)
//
// The network is defined once, in this package:
//
//	w, err := infer.LoadWeights(modelDir)                 // validated, dequantised
//	emb, err := infer.BuildBackbone(scope, x, w, params)  // x: [N,150,150,3] float32 0..255
//	stages, err := infer.BuildStages(scope, feat, w, params, "conv256_down_out", infer.StageFC)
//
// params (an infer.ParamFunc, func(name string, value *tf.Tensor) tf.Output)
// decides how each weight enters the graph: nil embeds all as constants;
// NewVariables(scope).Param keeps each in a resource variable (far less
// memory; the Embedder does this) whose handle an optimiser can update; a
// fine-tuning graph can mix, e.g. variables for the names under
// "conv256_down_out/" and "fc", constants or variables for the rest. BuildStages builds a slice of the network (stage
// names: StageNames), so the frozen part can run once and cache its output.
// CountFLOPs counts the multiply-adds of a graph's convolutions and matmuls
// (0.542 GFLOP per face for this network).
//
// # TensorFlow's log lines
//
// libtensorflow prints start-up notices (oneDNN, CPU features, MLIR) on
// stderr. A binary linking this package re-executes itself once at start-up,
// before any library initialiser runs, with TF_CPP_MIN_LOG_LEVEL=2 when that
// variable is unset and no --debug argument is given (see
// tflog_preinit_linux.go), and NewEmbedder holds back the absl INFO/WARNING
// lines TensorFlow prints while its session starts unless Options.Logger is
// at debug level. Errors always stay visible. --debug (or
// TF_CPP_MIN_LOG_LEVEL=0) shows everything.
package infer
