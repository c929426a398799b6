// Package smoke holds tests that prove the native stacks edged links against
// really work on this machine (no mocks): TensorFlow through the graft Go
// bindings, including gradients, and OpenCV through gocv, including video I/O
// and the Haar cascade from Debian's opencv-data. It has no code of its own.
package smoke
