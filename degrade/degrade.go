// Package degrade turns photos into frames of another camera domain, for
// evaluations that measure what a device's own camera does to recognition
// (`edged eval fewshot --degrade night`). It uses GoCV (cgo) and stays out
// of package eval, which is pure Go.
//
// # Night
//
// Night turns an image into an infrared night frame of a small, noisy,
// compressed doorbell camera. The steps, in this order:
//
//  1. resize to 1/3 of the width and height (INTER_AREA; Options.Scale
//     changes the 1/3, e.g. 1/2 for a nearer face);
//  2. convert to grayscale;
//  3. add Gaussian noise of sigma 4 (grey levels), seeded from the file's
//     base name (see Seed);
//  4. clip to 0..255;
//  5. encode and decode as JPEG, quality 50;
//  6. resize back to the original size (INTER_LINEAR);
//  7. replicate to 3 channels.
//
// The noise is reproducible: math/rand/v2's PCG, seeded with
// (FNV-64a(base name), 0x6e69676874 "night"), draws one NormFloat64 per
// pixel in row-major order.
package degrade

import (
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"math"
	"math/rand/v2"
	"path/filepath"

	"gocv.io/x/gocv"
)

// Names of the degradations `--degrade` accepts.
const (
	None  = ""
	Night = "night"
)

// ErrUnknown is returned for a degradation name other than Night.
var ErrUnknown = errors.New("unknown degradation")

// Parse checks a degradation name ("" or "none": none).
func Parse(name string) (string, error) {
	switch name {
	case "", "none":
		return None, nil
	case Night:
		return Night, nil
	}
	return "", fmt.Errorf("%w %q (want night or none)", ErrUnknown, name)
}

// Options of a night frame.
type Options struct {
	// Scale is the downscale of step 1. Default 1/3 (the night frame); the
	// few-shot harness's nearer frame of a track uses 1/2.
	Scale float64
	// Sigma is the noise's standard deviation in grey levels. Default 4.
	Sigma float64
	// Quality is the JPEG quality. Default 50.
	Quality int
}

func (o *Options) fill() {
	if o.Scale <= 0 || o.Scale > 1 {
		o.Scale = 1.0 / 3
	}
	if o.Sigma <= 0 {
		o.Sigma = 4
	}
	if o.Quality <= 0 || o.Quality > 100 {
		o.Quality = 50
	}
}

// Seed is the noise seed of a file: FNV-64a of its base name.
func Seed(path string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(filepath.Base(path)))
	return h.Sum64()
}

// NightBytes decodes data (JPEG or PNG), makes the night frame (see the
// package doc) and returns it PNG-encoded (lossless, so the detector sees
// exactly the frame). name seeds the noise (its base name is used).
func NightBytes(data []byte, name string, o Options) ([]byte, error) {
	img, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil || img.Empty() {
		if err == nil {
			img.Close()
		}
		return nil, fmt.Errorf("degrade %s: cannot decode the image", filepath.Base(name))
	}
	defer img.Close()
	out, err := NightMat(img, name, o)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	buf, err := gocv.IMEncode(gocv.PNGFileExt, out)
	if err != nil {
		return nil, fmt.Errorf("degrade %s: %w", filepath.Base(name), err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}

// NightMat makes the night frame of a BGR image; the caller closes the
// result.
func NightMat(img gocv.Mat, name string, o Options) (gocv.Mat, error) {
	o.fill()
	w, h := img.Cols(), img.Rows()
	sw, sh := max(1, int(math.Round(float64(w)*o.Scale))), max(1, int(math.Round(float64(h)*o.Scale)))
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(img, &small, image.Pt(sw, sh), 0, 0, gocv.InterpolationArea) // 1
	grey := gocv.NewMat()
	defer grey.Close()
	gocv.CvtColor(small, &grey, gocv.ColorBGRToGray) // 2
	pix, err := grey.DataPtrUint8()
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("degrade %s: %w", filepath.Base(name), err)
	}
	r := rand.New(rand.NewPCG(Seed(name), 0x6e69676874))
	for i, p := range pix { // 3, 4 (grey is continuous: one row after the other)
		v := float64(p) + o.Sigma*r.NormFloat64()
		pix[i] = uint8(min(255, max(0, math.Round(v))))
	}
	jpg, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, grey, []int{gocv.IMWriteJpegQuality, o.Quality}) // 5
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("degrade %s: %w", filepath.Base(name), err)
	}
	dec, err := gocv.IMDecode(jpg.GetBytes(), gocv.IMReadGrayScale)
	jpg.Close()
	if err != nil || dec.Empty() {
		return gocv.Mat{}, fmt.Errorf("degrade %s: JPEG round trip failed", filepath.Base(name))
	}
	defer dec.Close()
	big := gocv.NewMat()
	defer big.Close()
	gocv.Resize(dec, &big, image.Pt(w, h), 0, 0, gocv.InterpolationLinear) // 6
	out := gocv.NewMat()
	gocv.CvtColor(big, &out, gocv.ColorGrayToBGR) // 7
	return out, nil
}

// NightFrame is NightBytes at the given scale, in the shape the few-shot
// harness takes (eval.FewShotOptions.Degrade).
func NightFrame(data []byte, name string, scale float64) ([]byte, error) {
	return NightBytes(data, name, Options{Scale: scale})
}
