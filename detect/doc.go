// Package detect finds faces in BGR frames with GoCV and turns each into the
// aligned 150x150 RGB chip the embedding network expects.
//
// Pipeline per frame:
//
//  1. detection: by default the Ultra-Light RFB-320 ONNX detector run with
//     OpenCV DNN (input 320x240 RGB, (x-127)/128; its outputs are already
//     decoded: softmax scores and normalised corner boxes), then a score
//     threshold, a size filter and greedy NMS; or, with no download, the Haar
//     cascade from Debian's opencv-data;
//  2. landmarks: a 68-point ONNX model on the detector box (64x64 grey,
//     pixel/256, outputs in box-relative units), reduced to five points
//     (eye centres = means of 36-41 and 42-47, nose tip 30, mouth corners 48
//     and 54);
//  3. alignment: a least-squares similarity transform of the five points onto
//     dlib's face-chip template (size 150, padding 0.25) and a bilinear
//     gocv.WarpAffine; without landmarks, or with implausible ones (eyes
//     swapped, mouth above the nose: the warp would mirror or flip the
//     face), a centre crop of the box, flagged Aligned=false (implausible
//     landmarks are kept in Face.Landmarks for display);
//  4. quality: face size, blur (variance of the Laplacian of the chip) and
//     landmark geometry (rough yaw), with an Issue string when poor.
//
// gocv v0.31 has no C++ exception guard: a corrupt model or image can abort
// the process. New therefore validates each model file (size, sha256,
// ONNX/XML structure) in Go and hands OpenCV the validated bytes, and
// DetectFile/DetectBytes check image headers before decoding.
//
// A Detector is safe for concurrent use: it owns a pool of Options.Workers
// sets of networks (default 1); each call borrows one set, so calls beyond
// the pool size wait.
package detect
