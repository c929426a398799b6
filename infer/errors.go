package infer

import "errors"

var (
	// ErrClosed is returned by Embed and Close after the Embedder was closed.
	ErrClosed = errors.New("embedder closed")

	// ErrModelFile is returned (wrapped, with the file name and the problem)
	// when the weights or their manifest are missing, truncated, corrupt or
	// do not describe the network this package builds.
	ErrModelFile = errors.New("invalid model file")

	// ErrInput is returned when BuildBackbone gets an input of the wrong
	// shape or type, or an unknown stage name.
	ErrInput = errors.New("invalid network input")
)
