package enroll

import (
	"errors"
	"fmt"
)

// Error is an enrollment failure with a stable, machine-readable code (the
// MQTT side puts it in its error replies) and a human message.
type Error struct {
	code string
	msg  string
	err  error // wrapped cause, may be nil
}

func (e *Error) Error() string {
	if e.err != nil && e.msg == "" {
		return e.err.Error()
	}
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

// Code returns the stable code, e.g. "no_face".
func (e *Error) Code() string { return e.code }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.err }

// Is matches any *Error with the same code, so errors.Is(err, ErrPoorQuality)
// holds for every poor-quality failure whatever its message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.code == e.code
}

func newError(code, msg string) *Error { return &Error{code: code, msg: msg} }

// with returns a copy of the sentinel with a specific message and cause.
func (e *Error) with(cause error, format string, a ...any) *Error {
	return &Error{code: e.code, msg: fmt.Sprintf(format, a...), err: cause}
}

// Codes and their sentinels. Test with errors.Is; read the code with
// Code() (or CodeOf for any error).
var (
	// ErrNoUsableFace: none of the images gave a usable face. The returned
	// error also carries the specific code when every image failed the same
	// way (poor_quality, several_faces, bad_image), and errors.Is matches
	// both.
	ErrNoUsableFace = newError("no_face", "no usable face in the images")
	// ErrPoorQuality: the face is too blurry, small or turned away.
	ErrPoorQuality = newError("poor_quality", "face quality too poor")
	// ErrSeveralFaces: several faces of similar prominence, none clearly
	// the one to enroll.
	ErrSeveralFaces = newError("several_faces", "several faces, none clearly the main one")
	// ErrBadImage: the data is not a decodable JPEG or PNG image.
	ErrBadImage = newError("bad_image", "undecodable image")
	// ErrUnknownPerson: the person id does not exist.
	ErrUnknownPerson = newError("unknown_person", "unknown person")
	// ErrUnknownCluster: the unknown-face cluster does not exist.
	ErrUnknownCluster = newError("unknown_cluster", "unknown face cluster not found")
	// ErrInvalidName: empty or over-long name, control characters.
	ErrInvalidName = newError("invalid_name", "invalid name")
	// ErrNameTaken: another person already has the name.
	ErrNameTaken = newError("name_taken", "name already used by another person")
	// ErrBadRequest: a request that cannot be served (no images, too many,
	// too large, no name or id, bad embedding).
	ErrBadRequest = newError("bad_request", "bad request")
	// ErrStorageFull: the disk holding the database is too full to store
	// anything (store.ErrDiskFull); nothing was changed. Retry once space
	// is freed.
	ErrStorageFull = newError("storage_full", "not enough free disk space to store it; nothing was changed")
	// ErrInternal: the store or the embedder failed; nothing was changed.
	ErrInternal = newError("internal", "internal error")
)

// CodeOf returns the code of an enrollment error, "internal" for any other
// non-nil error and "" for nil.
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.code
	}
	return ErrInternal.code
}

// Head version errors (heads.go).
var (
	// ErrNoActiveHead is returned by Heads.Rollback when no head version
	// is active: matching already uses the frozen network.
	ErrNoActiveHead = errors.New("no head is active (matching already uses the frozen network): nothing to roll back")
)
