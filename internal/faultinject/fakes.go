package faultinject

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"

	"github.com/edged-dev/edged/face"
)

// Test doubles: a 32x32 PNG whose first pixel encodes a person number
// (red: low byte, green: high byte) and a sample number (blue) is a photo
// of that person's one face; its embedding is a fixed random vector of the
// person plus a little noise of the sample.

// Photo returns person k's sample i as PNG bytes.
func Photo(k, i int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	c := color.RGBA{R: uint8(k), G: uint8(k >> 8), B: uint8(i), A: 255}
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// Finder implements enroll.Finder for Photo images.
type Finder struct{}

// DetectBytes implements enroll.Finder.
func (Finder) DetectBytes(data []byte) ([]face.Face, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	r, g, b, _ := img.At(0, 0).RGBA()
	pix := make([]byte, face.ChipSize*face.ChipSize*3)
	pix[0], pix[1], pix[2] = byte(r>>8), byte(g>>8), byte(b>>8)
	return []face.Face{{Box: image.Rect(4, 4, 28, 28), Score: 0.99, Chip: face.Chip{Pix: pix}, Quality: face.Quality{Score: 0.9}}}, nil
}

// Embedder implements enroll.Embedder for Finder's chips.
type Embedder struct{}

// Embed implements enroll.Embedder.
func (Embedder) Embed(chips []face.Chip) ([]face.Embedding, error) {
	out := make([]face.Embedding, len(chips))
	for i, c := range chips {
		k := uint64(c.Pix[0]) | uint64(c.Pix[1])<<8
		rng := rand.New(rand.NewPCG(k, 17))
		v := make([]float32, 128)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		v[int(c.Pix[2])%128] += 0.05
		out[i] = v
	}
	return out, nil
}
