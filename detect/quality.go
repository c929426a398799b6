package detect

import (
	"image"
	"math"
	"strings"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/face"
)

// blurOf is the variance of the Laplacian of the grey face (higher =
// sharper), measured on the dlib chip's area of the crop: the same pixels,
// at the same scale, whatever backbone's chip is embedded, so the blur
// thresholds keep their meaning.
func blurOf(w *worker, crop face.Chip) float32 {
	n := crop.Side()
	whole, err := gocv.NewMatFromBytes(n, n, gocv.MatTypeCV8UC3, crop.Pix)
	if err != nil {
		return 0
	}
	defer whole.Close()
	rgb := whole
	if n == face.CropSize {
		rgb = whole.Region(image.Rect(face.CropOffsetX, face.CropOffsetY, face.CropOffsetX+face.ChipSize, face.CropOffsetY+face.ChipSize))
		defer rgb.Close()
	}
	grey := gocv.NewMat()
	defer grey.Close()
	gocv.CvtColor(rgb, &grey, gocv.ColorRGBToGray)
	gocv.Laplacian(grey, &w.laplace, gocv.MatTypeCV64F, 1, 1, 0, gocv.BorderDefault)
	mean, std := gocv.NewMat(), gocv.NewMat()
	defer mean.Close()
	defer std.Close()
	gocv.MeanStdDev(w.laplace, &mean, &std)
	s := std.GetDoubleAt(0, 0)
	return float32(s * s)
}

// yawOf estimates yaw from the five points: the horizontal offset of the nose
// tip from the eye midpoint, in half eye distances, in the face's own frame
// (so head roll does not count). 0 = frontal; positive when the nose is
// towards the image right (the subject turned to their left), clamped to
// -1..1.
func yawOf(l []face.Point) float32 {
	ex := float64(l[face.LeftEye].X - l[face.RightEye].X)
	ey := float64(l[face.LeftEye].Y - l[face.RightEye].Y)
	d := math.Hypot(ex, ey)
	if d < 1e-6 {
		return 0
	}
	mx := float64(l[face.RightEye].X+l[face.LeftEye].X) / 2
	my := float64(l[face.RightEye].Y+l[face.LeftEye].Y) / 2
	nx, ny := float64(l[face.NoseTip].X)-mx, float64(l[face.NoseTip].Y)-my
	along := (nx*ex + ny*ey) / d // projection on the eye axis
	return float32(math.Max(-1, math.Min(1, along/(d/2))))
}

// plausible checks the landmark geometry in the face's own frame: eyes apart
// by a sensible share of the box, nose and mouth below the eyes, mouth below
// the nose.
func plausible(l []face.Point, b detection) bool {
	ex := float64(l[face.LeftEye].X - l[face.RightEye].X)
	ey := float64(l[face.LeftEye].Y - l[face.RightEye].Y)
	d := math.Hypot(ex, ey)
	side := math.Sqrt(float64(b.w() * b.h()))
	if ex <= 0 || d < 0.15*side || d > 1.2*side {
		return false
	}
	ux, uy := ex/d, ey/d // eye axis; "down" is (-uy, ux)
	mx := float64(l[face.RightEye].X+l[face.LeftEye].X) / 2
	my := float64(l[face.RightEye].Y+l[face.LeftEye].Y) / 2
	down := func(p face.Point) float64 { return (float64(p.X)-mx)*(-uy) + (float64(p.Y)-my)*ux }
	nose := down(l[face.NoseTip])
	mouth := (down(l[face.MouthRight]) + down(l[face.MouthLeft])) / 2
	// The nose only has to be below the eye line: a face looking slightly up
	// (LFW's Justin_Guarini_0001) puts it at 0.09 eye distances, and a real
	// mirror or flip still fails the order and mouth-distance checks.
	return nose > 0 && mouth > nose && mouth > 0.5*d
}

// rate fills in the quality of a face.
func (d *Detector) rate(w *worker, f *face.Face, b detection, geometryOK bool) {
	q := face.Quality{Size: sqrt32(b.w() * b.h())}
	if len(f.Crop.Pix) > 0 {
		q.Blur = blurOf(w, f.Crop)
	}
	if f.Landmarks != nil {
		q.Yaw = yawOf(f.Landmarks)
	}
	var issues []string
	// Each factor is 1 when comfortably good and falls towards 0.
	sizeF := clamp(q.Size/(2*d.opts.MinQualitySize), 0, 1)
	blurF := clamp(q.Blur/(2*d.opts.MinQualityBlur), 0, 1)
	yawF := clamp(1-abs32(q.Yaw), 0, 1)
	if q.Size < d.opts.MinQualitySize {
		issues = append(issues, "small face")
	}
	if q.Blur < d.opts.MinQualityBlur {
		issues = append(issues, "blurry")
	}
	switch {
	case f.Landmarks == nil:
		issues = append(issues, "no landmarks")
		yawF = 0.5
	case !geometryOK || !f.Aligned:
		issues = append(issues, "implausible landmarks")
		yawF = 0.25
	case abs32(q.Yaw) > d.opts.MaxQualityYaw:
		issues = append(issues, "turned away")
	}
	q.Score = sizeF * blurF * yawF * clamp(f.Score, 0, 1)
	q.Issue = strings.Join(issues, ", ")
	f.Quality = q
}

// describe turns a detector box into a face: landmarks, chip, quality.
func (d *Detector) describe(w *worker, img gocv.Mat, b detection) face.Face {
	f := face.Face{Box: b.rect(), Score: b.score}
	geometryOK := false
	if w.hasLM {
		if pts, ok := landmarks68(w, img, b); ok {
			f.Landmarks = fivePoints(pts)
			// Implausible points (eyes swapped, mouth above the nose...) would
			// warp the face mirrored or upside down, worse than a centre crop:
			// keep them for display, but fall back.
			if geometryOK = plausible(f.Landmarks, b); geometryOK {
				f.Chip, f.Aligned = AlignTo(img, f.Landmarks, d.opts.Template)
				f.Crop, _ = AlignTo(img, f.Landmarks, face.CropTemplate)
			}
		}
	}
	if !f.Aligned {
		f.Chip = warpChip(img, centreCropTransform(b, d.opts.Template), d.opts.Template.Size)
		f.Crop = warpChip(img, centreCropTransform(b, face.CropTemplate), face.CropSize)
	}
	d.rate(w, &f, b, geometryOK)
	return f
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(max(x, 0)))) }

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

func clamp(x, lo, hi float32) float32 { return max(lo, min(hi, x)) }
