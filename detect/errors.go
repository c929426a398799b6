package detect

import "errors"

var (
	// ErrClosed is returned by calls on a closed Detector.
	ErrClosed = errors.New("detector closed")
	// ErrModel is returned when a model file is missing, truncated, corrupt
	// or does not match its checksum.
	ErrModel = errors.New("invalid model file")
	// ErrOptions is returned for invalid Options.
	ErrOptions = errors.New("invalid detector options")
	// ErrImage is returned for frames or files that cannot be used as images
	// (empty, wrong type, not an image, corrupt).
	ErrImage = errors.New("invalid image")
)
