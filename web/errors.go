package web

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes of *Error (the same words as the MQTT reply codes, so a
// backend can return either).
const (
	CodeNotFound    = "not_found"
	CodeBadRequest  = "invalid_field"
	CodeConflict    = "conflict"
	CodeUnavailable = "unavailable"
)

// Error is an error with a code the page shows; backends return it (or any
// error with a Code() string method).
type Error struct {
	code, msg string
}

// Errorf returns an *Error with the code.
func Errorf(code, format string, a ...any) *Error {
	return &Error{code: code, msg: fmt.Sprintf(format, a...)}
}

func (e *Error) Error() string { return e.msg }

// Code is the error's code.
func (e *Error) Code() string { return e.code }

var (
	// ErrClosed is returned by Server methods after Close.
	ErrClosed = errors.New("web server is closed")
)

// statusOf maps an error's code to the HTTP status and whether its message
// may be shown (coded errors were written for users; others may carry
// paths or internals and are logged instead).
func statusOf(err error) (int, string, bool) {
	var c interface{ Code() string }
	if !errors.As(err, &c) {
		return http.StatusInternalServerError, "internal", false
	}
	code := c.Code()
	switch code {
	case CodeNotFound, "unknown_person", "unknown_cluster", "unknown_camera":
		return http.StatusNotFound, code, true
	case CodeBadRequest, "missing_field", "invalid_json", "invalid_name", "bad_request":
		return http.StatusBadRequest, code, true
	case CodeConflict, "name_taken", "last_sample":
		return http.StatusConflict, code, true
	case CodeUnavailable:
		return http.StatusServiceUnavailable, code, true
	case "storage_full":
		return http.StatusInsufficientStorage, code, true
	case "no_face", "poor_quality", "bad_image", "several_faces":
		return http.StatusUnprocessableEntity, code, true
	}
	return http.StatusInternalServerError, code, false
}
