package mqtt

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// Sentinel errors of the package. Callers compare with errors.Is.
var (
	// ErrClosed is returned by every method of a Client or Broker after Close.
	ErrClosed = errors.New("mqtt: closed")
	// ErrOptions is wrapped by New / StartBroker when an option is invalid.
	ErrOptions = errors.New("mqtt: invalid options")
	// ErrTopic is returned when an event topic or a topic segment (device id,
	// camera name, person id) is empty or contains '/', '+', '#' or NUL.
	ErrTopic = errors.New("mqtt: invalid topic")
	// ErrNotConnected is returned by Flush when the context ends while the
	// client is not connected to the broker.
	ErrNotConnected = errors.New("mqtt: not connected")
)

// Machine-readable error codes of command replies. The set may grow; clients
// should treat an unknown code like "internal".
const (
	CodeBadJSON        = "bad_json"        // not UTF-8 JSON, not an object, duplicate key, trailing data
	CodeUnknownField   = "unknown_field"   // a field the command does not have (names are case-sensitive)
	CodeMissingField   = "missing_field"   // a required field is absent or empty
	CodeInvalidField   = "invalid_field"   // a field has the wrong type or an out-of-range value
	CodeTooLarge       = "too_large"       // payload, image or image count over the limit
	CodeBadImage       = "bad_image"       // not base64, not JPEG/PNG, or undecodable
	CodeNoFace         = "no_face"         // no face found in an image
	CodePoorQuality    = "poor_quality"    // faces found but too small, blurred or turned
	CodeUnknownPerson  = "unknown_person"  // no person with that id
	CodeUnknownCluster = "unknown_cluster" // no unknown-face cluster with that id
	CodeUnknownCamera  = "unknown_camera"  // no camera with that name
	CodeUnknownCommand = "unknown_command" // no command with that name
	CodeConflict       = "conflict"        // the request contradicts the current state (e.g. a fine-tune already runs)
	CodeBusy           = "busy"            // the command queue is full; retry later
	CodeTimeout        = "timeout"         // the command did not finish in time
	CodeUnavailable    = "unavailable"     // edged is shutting down or the feature is off
	CodeStorageFull    = "storage_full"    // the device's disk is too full to store anything; nothing was changed, retry once space is freed
	CodeInternal       = "internal"        // anything else; details are in edged's log, not in the reply
)

// codePattern is what a code from a Service error must look like to be
// passed through to the reply; anything else becomes "internal".
var codePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// Error is an error with a machine-readable code. Service implementations may
// return it (or any error with a Code() string method); the command router
// puts the code and the message into the reply.
type Error struct {
	code    string
	message string
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{code: code, message: fmt.Sprintf(format, args...)}
}

// Code is the machine-readable code, one of the Code* constants.
func (e *Error) Code() string { return e.code }

// Error is the human-readable message.
func (e *Error) Error() string { return e.message }

// coder is what the router looks for in a Service error.
type coder interface{ Code() string }

// replyErrorFor maps a handler error to the reply's code and message. Errors
// without a valid code become "internal" with a generic message, so internals
// (paths, keys, stack traces) never reach a client; internal reports whether
// the caller should log the original.
func replyErrorFor(err error) (re ReplyError, internal bool) {
	var c coder
	if errors.As(err, &c) && codePattern.MatchString(c.Code()) {
		return ReplyError{Code: c.Code(), Message: err.Error()}, false
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ReplyError{Code: CodeTimeout, Message: "the command did not finish in time"}, false
	case errors.Is(err, context.Canceled):
		return ReplyError{Code: CodeUnavailable, Message: "edged is shutting down"}, false
	}
	return ReplyError{Code: CodeInternal, Message: "internal error (see edged's log)"}, true
}
