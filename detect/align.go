package detect

import (
	"fmt"
	"image"
	"image/color"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/face"
)

// Template is dlib's mean face for 150x150 chips (face.DlibTemplate's
// points), kept for callers of this package.
var Template = face.DlibTemplate.Points

// Similarity and FitSimilarity live in package face (pure Go), shared by
// every backbone's template.
type Similarity = face.Similarity

// FitSimilarity is face.FitSimilarity.
func FitSimilarity(src, dst []face.Point) (Similarity, bool) { return face.FitSimilarity(src, dst) }

// warpChip warps img (BGR) by s into a size x size RGB chip (bilinear,
// black border).
func warpChip(img gocv.Mat, s Similarity, size int) face.Chip {
	m := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer m.Close()
	m.SetDoubleAt(0, 0, s.A)
	m.SetDoubleAt(0, 1, -s.B)
	m.SetDoubleAt(0, 2, s.TX)
	m.SetDoubleAt(1, 0, s.B)
	m.SetDoubleAt(1, 1, s.A)
	m.SetDoubleAt(1, 2, s.TY)
	out := gocv.NewMat()
	defer out.Close()
	gocv.WarpAffineWithParams(img, &out, m, image.Pt(size, size),
		gocv.InterpolationLinear, gocv.BorderConstant, color.RGBA{})
	gocv.CvtColor(out, &out, gocv.ColorBGRToRGB)
	return face.Chip{Size: size, Pix: out.ToBytes()}
}

// AlignChip warps a BGR frame onto the dlib template by its five landmarks.
func AlignChip(img gocv.Mat, landmarks []face.Point) (face.Chip, bool) {
	return AlignTo(img, landmarks, face.DlibTemplate)
}

// AlignTo warps a BGR frame onto template t by its five landmarks.
func AlignTo(img gocv.Mat, landmarks []face.Point, t face.Template) (face.Chip, bool) {
	s, ok := t.Fit(landmarks)
	if !ok {
		return face.Chip{}, false
	}
	return warpChip(img, s, t.Size), true
}

// ChipFromCrop derives the chip for template t from a crop aligned to
// face.CropTemplate (what the store keeps): the two templates are related by
// a fixed similarity, so this is one more bilinear warp.
func ChipFromCrop(crop face.Chip, t face.Template) (face.Chip, error) {
	if err := crop.Validate(); err != nil {
		return face.Chip{}, fmt.Errorf("crop: %w", err)
	}
	if crop.Side() != face.CropSize {
		return face.Chip{}, fmt.Errorf("crop: %w: %dx%d, want %dx%d", face.ErrChipSize, crop.Side(), crop.Side(), face.CropSize, face.CropSize)
	}
	s, ok := t.Fit(face.CropTemplate.Points[:])
	if !ok {
		return face.Chip{}, fmt.Errorf("template %s: degenerate", t.Name)
	}
	rgb, err := gocv.NewMatFromBytes(crop.Side(), crop.Side(), gocv.MatTypeCV8UC3, crop.Pix)
	if err != nil {
		return face.Chip{}, fmt.Errorf("crop: %w", err)
	}
	defer rgb.Close()
	// warpChip takes BGR and swaps to RGB; the crop is RGB, so swap first.
	bgr := gocv.NewMat()
	defer bgr.Close()
	gocv.CvtColor(rgb, &bgr, gocv.ColorBGRToRGB) // the same channel swap
	return warpChip(bgr, s, t.Size), nil
}

// centreCropTransform maps a detector box onto template t's chip without
// landmarks: the box centre goes to where the dlib chip's centre falls in t
// and the box side to the face width. Used only as a flagged fallback.
func centreCropTransform(b detection, t face.Template) Similarity {
	side := float64(max(b.w(), b.h()))
	// In dlib chips the face (eyebrows to chin) spans roughly x 25..125 and
	// the box centre sits at (75, 78); other templates by their fixed
	// similarity to dlib's.
	scale := 100 / side
	cx, cy := float64(b.x1+b.x2)/2, float64(b.y1+b.y2)/2
	toDlib := Similarity{A: scale, TX: 75 - scale*cx, TY: 78 - scale*cy}
	if t.Name == face.DlibTemplate.Name {
		return toDlib
	}
	d, _ := t.Fit(face.DlibTemplate.Points[:]) // dlib chip -> t
	return compose(d, toDlib)
}

// compose returns the transform x -> outer(inner(x)).
func compose(outer, inner Similarity) Similarity {
	return Similarity{
		A:  outer.A*inner.A - outer.B*inner.B,
		B:  outer.A*inner.B + outer.B*inner.A,
		TX: outer.A*inner.TX - outer.B*inner.TY + outer.TX,
		TY: outer.B*inner.TX + outer.A*inner.TY + outer.TY,
	}
}
