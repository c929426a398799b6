package pipeline

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by Start, AddCamera and Close after Close.
	ErrClosed = errors.New("pipeline closed")
	// ErrNotStarted is returned by AddCamera before Start.
	ErrNotStarted = errors.New("pipeline not started")
	// ErrDuplicateCamera is returned by AddCamera for a name already running.
	ErrDuplicateCamera = errors.New("camera already running")
	// ErrInvalidCamera is returned by AddCamera for a camera without a name
	// or source.
	ErrInvalidCamera = errors.New("invalid camera")
)

// FatalError marks a processor error after which the camera cannot go on
// (a model that failed, a writer whose disk is full): the camera's source
// is stopped and its chain drains; other cameras keep running.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return fmt.Sprintf("fatal: %v", e.Err) }
func (e *FatalError) Unwrap() error { return e.Err }

// Fatal wraps err in a *FatalError (nil stays nil).
func Fatal(err error) error {
	if err == nil {
		return nil
	}
	return &FatalError{Err: err}
}
