package face

import "math"

// Template is where the five landmarks (in Face.Landmarks order) go in an
// aligned chip of Size x Size pixels. A backbone is trained on chips aligned
// to one template; alignment fits a similarity transform (rotation, uniform
// scale, translation) of the detected landmarks onto it.
type Template struct {
	Name   string
	Size   int
	Points [NumLandmarks]Point
}

// DlibTemplate is dlib's mean face for 150x150 chips with padding 0.25
// (get_face_chip_details), the dlib ResNet's alignment.
var DlibTemplate = Template{Name: "dlib-150", Size: 150, Points: [NumLandmarks]Point{
	{X: 47.55, Y: 46.60},  // right eye centre (image left)
	{X: 100.48, Y: 46.60}, // left eye centre (image right)
	{X: 74.01, Y: 76.56},  // nose tip
	{X: 50.41, Y: 103.02}, // mouth corner, image left
	{X: 97.61, Y: 103.02}, // mouth corner, image right
}}

// ArcFaceTemplate is the usual 112x112 ArcFace (insightface) template, the
// alignment MobileFaceNet was trained with.
var ArcFaceTemplate = Template{Name: "arcface-112", Size: 112, Points: [NumLandmarks]Point{
	{X: 38.2946, Y: 51.6963},
	{X: 73.5318, Y: 51.5014},
	{X: 56.0252, Y: 71.7366},
	{X: 41.5493, Y: 92.3655},
	{X: 70.7299, Y: 92.2041},
}}

// Crop geometry: the dlib template moved by (CropOffsetX, CropOffsetY) on a
// CropSize canvas. In eye distances from the eyes' midpoint, the ArcFace
// chip spans x -1.59..1.59 and y -1.47..1.72, the dlib chip x -1.42..1.42 and
// y -0.88..1.95; the crop spans x -1.72..1.76 and y -1.52..1.95 at the dlib
// chip's resolution (52.9 px per eye distance, more than ArcFace's 35.2), so
// both chips can be cut from it again. Its rows CropOffsetY.. and columns
// CropOffsetX.. of 150x150 are exactly the dlib chip's area.
const (
	CropSize    = 184
	CropOffsetX = 17
	CropOffsetY = 34
)

// CropTemplate is the template of Face.Crop and of the crops the store
// keeps.
var CropTemplate = func() Template {
	t := Template{Name: "crop-184", Size: CropSize}
	for i, p := range DlibTemplate.Points {
		t.Points[i] = Point{X: p.X + CropOffsetX, Y: p.Y + CropOffsetY}
	}
	return t
}()

// Similarity is x' = A*x - B*y + TX, y' = B*x + A*y + TY (rotation, uniform
// scale, translation).
type Similarity struct{ A, B, TX, TY float64 }

// Apply maps a point.
func (s Similarity) Apply(p Point) Point {
	x, y := float64(p.X), float64(p.Y)
	return Point{X: float32(s.A*x - s.B*y + s.TX), Y: float32(s.B*x + s.A*y + s.TY)}
}

// Scale is the uniform scale factor.
func (s Similarity) Scale() float64 { return math.Hypot(s.A, s.B) }

// FitSimilarity returns the least-squares similarity transform mapping src
// onto dst (plain least squares over all points, no outlier rejection: with
// five good landmarks it matches dlib's alignment). ok is false when src is
// degenerate (all points equal). It serves every template.
func FitSimilarity(src, dst []Point) (Similarity, bool) {
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

// Fit returns the transform that aligns landmarks (in frame pixels) onto t.
func (t Template) Fit(landmarks []Point) (Similarity, bool) {
	if len(landmarks) != NumLandmarks {
		return Similarity{}, false
	}
	return FitSimilarity(landmarks, t.Points[:])
}
