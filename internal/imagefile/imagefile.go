// Package imagefile checks encoded still images (JPEG, PNG) in pure Go
// before OpenCV decodes them: gocv has no C++ exception guard, and OpenCV's
// decoders assert (abort the process) on some inputs, such as images larger
// than its pixel limit.
package imagefile

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
)

// MaxPixels is the largest image (width*height) accepted: 64 megapixels,
// well below OpenCV's own limit (2^30) and far above any camera frame.
const MaxPixels = 64 << 20

var (
	// ErrNotImage is returned for data that is neither JPEG nor PNG.
	ErrNotImage = errors.New("not a JPEG or PNG image")
	// ErrCorrupt is returned when the header of a JPEG or PNG cannot be read.
	ErrCorrupt = errors.New("corrupt image header")
	// ErrTooLarge is returned for images above MaxPixels.
	ErrTooLarge = errors.New("image too large")
	// ErrEmpty is returned for empty data.
	ErrEmpty = errors.New("empty image data")
)

// Info describes an encoded image.
type Info struct {
	Format        string // "jpeg" or "png"
	Width, Height int
}

// Check sniffs the format of data and reads its header. It does not decode
// the pixels (OpenCV does that), so a truncated body passes; OpenCV then
// decodes what is there.
func Check(data []byte) (Info, error) {
	if len(data) == 0 {
		return Info{}, ErrEmpty
	}
	var (
		format string
		cfg    image.Config
		err    error
	)
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		format = "jpeg"
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(data))
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		format = "png"
		cfg, err = png.DecodeConfig(bytes.NewReader(data))
	default:
		return Info{}, ErrNotImage
	}
	if err != nil {
		return Info{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Info{}, fmt.Errorf("%w: %s: size %dx%d", ErrCorrupt, format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return Info{}, fmt.Errorf("%w: %dx%d", ErrTooLarge, cfg.Width, cfg.Height)
	}
	return Info{Format: format, Width: cfg.Width, Height: cfg.Height}, nil
}

// IsImageName reports whether a file name has an extension Check accepts.
func IsImageName(name string) bool {
	n := len(name)
	for _, ext := range []string{".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"} {
		if n > len(ext) && name[n-len(ext):] == ext {
			return true
		}
	}
	return false
}
