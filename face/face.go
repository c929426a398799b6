// Package face holds the plain-Go types that flow between edged's stages:
// aligned face chips, detected faces and embeddings. It has no cgo and no
// dependencies, so every package (native or pure Go) can share it.
package face

import (
	"errors"
	"fmt"
	"image"
)

// ChipSize is the side of the dlib ResNet's chip (dlib's face-chip size),
// the side a Chip with Size 0 has. Other backbones take other sizes
// (MobileFaceNet: 112); a chip carries its own.
const ChipSize = 150

// Chip is an aligned face image: Size x Size pixels, 8-bit RGB, row-major
// HWC (Pix[(y*Size+x)*3+c], c = R,G,B). Size 0 means ChipSize (150).
type Chip struct {
	Size int
	Pix  []uint8
}

// ErrChipSize is returned when a chip does not hold Size*Size*3 bytes or is
// not the size a backbone takes.
var ErrChipSize = errors.New("wrong face chip size")

// MaxChipSize bounds a chip's side (a corrupt file or message cannot ask
// for a huge allocation).
const MaxChipSize = 1024

// Side is the chip's width and height in pixels.
func (c Chip) Side() int {
	if c.Size == 0 {
		return ChipSize
	}
	return c.Size
}

// Validate reports whether the chip's pixels fill its size.
func (c Chip) Validate() error {
	n := c.Side()
	if n < 1 || n > MaxChipSize {
		return fmt.Errorf("%w: side %d not in [1, %d]", ErrChipSize, n, MaxChipSize)
	}
	if len(c.Pix) != n*n*3 {
		return fmt.Errorf("%w: got %d bytes, want %d for %dx%d RGB", ErrChipSize, len(c.Pix), n*n*3, n, n)
	}
	return nil
}

// ChipFromImage converts a square image into a Chip (RGB, alpha dropped).
// The chip's Size is the image's side.
func ChipFromImage(img image.Image) (Chip, error) {
	b := img.Bounds()
	if b.Dx() != b.Dy() || b.Dx() < 1 || b.Dx() > MaxChipSize {
		return Chip{}, fmt.Errorf("%w: image is %dx%d, want a square of at most %d", ErrChipSize, b.Dx(), b.Dy(), MaxChipSize)
	}
	n := b.Dx()
	pix := make([]uint8, 0, n*n*3)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			pix = append(pix, uint8(r>>8), uint8(g>>8), uint8(bl>>8))
		}
	}
	return Chip{Size: n, Pix: pix}, nil
}

// Image returns the chip as an image.RGBA (for encoding or drawing).
func (c Chip) Image() *image.RGBA {
	n := c.Side()
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	for i := 0; i < n*n && 3*i+2 < len(c.Pix); i++ {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = c.Pix[3*i], c.Pix[3*i+1], c.Pix[3*i+2], 255
	}
	return img
}

// Point is a position in image pixels.
type Point struct {
	X, Y float32
}

// The five landmarks, in this order, in Face.Landmarks.
const (
	RightEye   = iota // subject's right eye centre (image left)
	LeftEye           // subject's left eye centre (image right)
	NoseTip           //
	MouthRight        // mouth corner on the image left
	MouthLeft         // mouth corner on the image right
	NumLandmarks
)

// Quality describes how usable a face is for enrollment and recognition.
type Quality struct {
	Score float32 `json:"score"`           // overall, 0 (useless) .. 1 (good)
	Size  float32 `json:"size"`            // face box side in pixels (geometric mean of w, h)
	Blur  float32 `json:"blur"`            // variance of the Laplacian of the chip (higher is sharper)
	Yaw   float32 `json:"yaw"`             // rough yaw from landmark geometry, -1 (left) .. 1 (right)
	Issue string  `json:"issue,omitempty"` // why the face is poor, empty when it is fine
}

// Face is one detected face, aligned and ready to embed.
type Face struct {
	Box       image.Rectangle // in frame pixels
	Score     float32         // detector confidence 0..1
	Landmarks []Point         // NumLandmarks points in frame pixels, nil when not available
	Aligned   bool            // false: the chip is a centre crop of the box (no landmarks)
	Chip      Chip            // aligned to the backbone's template
	// Crop is the face aligned to CropTemplate, large enough to derive the
	// chip of every backbone's template again (what the store keeps, so a
	// gallery survives a change of backbone). Empty when not asked for.
	Crop    Chip
	Quality Quality
}

// Embedding is the raw output of a backbone network (128 values for the
// dlib ResNet, 192 for MobileFaceNet), not normalised.
type Embedding []float32
