// Package face holds the plain-Go types that flow between edged's stages:
// aligned face chips, detected faces and embeddings. It has no cgo and no
// dependencies, so every package (native or pure Go) can share it.
package face

import (
	"errors"
	"fmt"
	"image"
)

// ChipSize is the side of the square, aligned face chip the embedding network
// expects (dlib's face-chip size).
const ChipSize = 150

// Chip is an aligned face image: ChipSize x ChipSize pixels, 8-bit RGB,
// row-major HWC (Pix[(y*ChipSize+x)*3+c], c = R,G,B).
type Chip struct {
	Pix []uint8
}

// ErrChipSize is returned when a chip does not hold ChipSize*ChipSize*3 bytes.
var ErrChipSize = errors.New("face chip must be 150x150 RGB")

// Validate reports whether the chip has the right size.
func (c Chip) Validate() error {
	if len(c.Pix) != ChipSize*ChipSize*3 {
		return fmt.Errorf("%w: got %d bytes, want %d", ErrChipSize, len(c.Pix), ChipSize*ChipSize*3)
	}
	return nil
}

// ChipFromImage converts a 150x150 image into a Chip (RGB, alpha dropped).
func ChipFromImage(img image.Image) (Chip, error) {
	b := img.Bounds()
	if b.Dx() != ChipSize || b.Dy() != ChipSize {
		return Chip{}, fmt.Errorf("%w: image is %dx%d", ErrChipSize, b.Dx(), b.Dy())
	}
	pix := make([]uint8, 0, ChipSize*ChipSize*3)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			pix = append(pix, uint8(r>>8), uint8(g>>8), uint8(bl>>8))
		}
	}
	return Chip{Pix: pix}, nil
}

// Image returns the chip as an image.RGBA (for encoding or drawing).
func (c Chip) Image() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, ChipSize, ChipSize))
	for i := 0; i < ChipSize*ChipSize && 3*i+2 < len(c.Pix); i++ {
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
	Chip      Chip
	Quality   Quality
}

// Embedding is the raw 128-d output of the backbone network.
type Embedding []float32
