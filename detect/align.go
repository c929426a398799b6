package detect

import (
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/face"
)

// Template is dlib's mean face for 150x150 chips with padding 0.25 (see
// shared/golden/alignment.md), in face.Landmarks order.
var Template = [face.NumLandmarks]face.Point{
	{X: 47.55, Y: 46.60},  // right eye centre (image left)
	{X: 100.48, Y: 46.60}, // left eye centre (image right)
	{X: 74.01, Y: 76.56},  // nose tip
	{X: 50.41, Y: 103.02}, // mouth corner, image left
	{X: 97.61, Y: 103.02}, // mouth corner, image right
}

// Similarity is x' = A*x - B*y + TX, y' = B*x + A*y + TY (rotation, uniform
// scale, translation).
type Similarity struct{ A, B, TX, TY float64 }

// Apply maps a point.
func (s Similarity) Apply(p face.Point) face.Point {
	x, y := float64(p.X), float64(p.Y)
	return face.Point{X: float32(s.A*x - s.B*y + s.TX), Y: float32(s.B*x + s.A*y + s.TY)}
}

// Scale is the uniform scale factor.
func (s Similarity) Scale() float64 { return math.Hypot(s.A, s.B) }

// FitSimilarity returns the least-squares similarity transform mapping src
// onto dst (plain least squares over all points, no outlier rejection). ok is
// false when src is degenerate (all points equal).
func FitSimilarity(src, dst []face.Point) (Similarity, bool) {
	n := min(len(src), len(dst))
	if n < 2 {
		return Similarity{}, false
	}
	var sx, sy, dx, dy float64
	for i := 0; i < n; i++ {
		sx += float64(src[i].X)
		sy += float64(src[i].Y)
		dx += float64(dst[i].X)
		dy += float64(dst[i].Y)
	}
	fn := float64(n)
	sx, sy, dx, dy = sx/fn, sy/fn, dx/fn, dy/fn
	var num1, num2, den float64
	for i := 0; i < n; i++ {
		px, py := float64(src[i].X)-sx, float64(src[i].Y)-sy
		qx, qy := float64(dst[i].X)-dx, float64(dst[i].Y)-dy
		num1 += px*qx + py*qy
		num2 += px*qy - py*qx
		den += px*px + py*py
	}
	if den < 1e-9 {
		return Similarity{}, false
	}
	a, b := num1/den, num2/den
	return Similarity{A: a, B: b, TX: dx - (a*sx - b*sy), TY: dy - (b*sx + a*sy)}, true
}

// warpChip warps img (BGR) by s into a ChipSize x ChipSize RGB chip
// (bilinear, black border).
func warpChip(img gocv.Mat, s Similarity) face.Chip {
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
	gocv.WarpAffineWithParams(img, &out, m, image.Pt(face.ChipSize, face.ChipSize),
		gocv.InterpolationLinear, gocv.BorderConstant, color.RGBA{})
	gocv.CvtColor(out, &out, gocv.ColorBGRToRGB)
	return face.Chip{Pix: out.ToBytes()}
}

// AlignChip warps a BGR frame onto the template by its five landmarks.
func AlignChip(img gocv.Mat, landmarks []face.Point) (face.Chip, bool) {
	if len(landmarks) != face.NumLandmarks {
		return face.Chip{}, false
	}
	s, ok := FitSimilarity(landmarks, Template[:])
	if !ok {
		return face.Chip{}, false
	}
	return warpChip(img, s), true
}

// centreCropTransform maps a detector box onto the chip without landmarks:
// the box centre goes to the template's centre and the box side to the
// template's face width. Used only as a flagged fallback.
func centreCropTransform(b detection) Similarity {
	side := float64(max(b.w(), b.h()))
	// In dlib chips the face (eyebrows to chin) spans roughly x 25..125.
	scale := 100 / side
	cx, cy := float64(b.x1+b.x2)/2, float64(b.y1+b.y2)/2
	return Similarity{A: scale, TX: 75 - scale*cx, TY: 78 - scale*cy}
}
