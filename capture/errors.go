package capture

import "errors"

var (
	// ErrClosed is returned by calls on a closed Source.
	ErrClosed = errors.New("source closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("source already started")
	// ErrNotFound is returned when a file, folder or glob matches nothing.
	ErrNotFound = errors.New("no such file")
	// ErrNotVideo is returned for a file OpenCV cannot open as a video.
	ErrNotVideo = errors.New("not a video")
	// ErrNotImage is returned for an image file that cannot be decoded.
	ErrNotImage = errors.New("not a readable image")
	// ErrTruncated is reported when a video file ends before its announced
	// frame count.
	ErrTruncated = errors.New("video file truncated")
	// ErrURL is returned for a URL Open does not understand.
	ErrURL = errors.New("unsupported capture url")
	// ErrOptions is returned for invalid Options.
	ErrOptions = errors.New("invalid capture options")
)
