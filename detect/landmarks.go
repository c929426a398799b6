package detect

import (
	"image"
	"image/color"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/face"
)

const lmInput = 64 // landmark model input side (grey)

// landmarks68 runs the 68-point model on a detector box: the box is sampled
// into a 64x64 grey image (outside the frame: black), scaled to [0,1) by
// /256; the outputs are (x,y) pairs in box units (0..1 across the box).
func landmarks68(w *worker, img gocv.Mat, b detection) ([]face.Point, bool) {
	bw, bh := float64(b.w()), float64(b.h())
	if bw < 2 || bh < 2 {
		return nil, false
	}
	sx, sy := lmInput/bw, lmInput/bh
	m := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer m.Close()
	m.SetDoubleAt(0, 0, sx)
	m.SetDoubleAt(0, 2, -sx*float64(b.x1))
	m.SetDoubleAt(1, 1, sy)
	m.SetDoubleAt(1, 2, -sy*float64(b.y1))
	crop := gocv.NewMat()
	defer crop.Close()
	// INTER_AREA is not supported by warpAffine; for big boxes blur first
	// would be closer to the training resize, but bilinear is what the
	// reference pipeline (cv.resize) used.
	gocv.WarpAffineWithParams(img, &crop, m, image.Pt(lmInput, lmInput), gocv.InterpolationLinear, gocv.BorderConstant, color.RGBA{})
	gocv.CvtColor(crop, &crop, gocv.ColorBGRToGray)
	blob := gocv.BlobFromImage(crop, 1.0/256, image.Pt(lmInput, lmInput), gocv.NewScalar(0, 0, 0, 0), false, false)
	defer blob.Close()
	w.lm.SetInput(blob, "input")
	out := w.lm.Forward("output")
	defer out.Close()
	v, err := out.DataPtrFloat32()
	if err != nil || len(v) != 136 {
		return nil, false
	}
	pts := make([]face.Point, 68)
	for i := range pts {
		pts[i] = face.Point{X: b.x1 + v[2*i]*b.w(), Y: b.y1 + v[2*i+1]*b.h()}
	}
	return pts, true
}

// fivePoints reduces 68 iBUG points to face.Landmarks order.
func fivePoints(p []face.Point) []face.Point {
	mean := func(lo, hi int) face.Point {
		var x, y float32
		for i := lo; i <= hi; i++ {
			x += p[i].X
			y += p[i].Y
		}
		n := float32(hi - lo + 1)
		return face.Point{X: x / n, Y: y / n}
	}
	out := make([]face.Point, face.NumLandmarks)
	out[face.RightEye] = mean(36, 41)
	out[face.LeftEye] = mean(42, 47)
	out[face.NoseTip] = p[30]
	out[face.MouthRight] = p[48]
	out[face.MouthLeft] = p[54]
	return out
}
