package detect

import (
	"math"
	"testing"

	"github.com/edged-dev/edged/face"
)

// TestTemplatesAndCrops: the detector aligns chips to the template it is
// given, always makes the 184x184 crop, and a chip cut again from the crop
// (what re-embedding after a backbone change does) is close to the chip
// warped from the frame directly.
func TestTemplatesAndCrops(t *testing.T) {
	for _, tmpl := range []face.Template{face.DlibTemplate, face.ArcFaceTemplate} {
		d := newTestDetector(t, func(o *Options) { o.Template = tmpl })
		for _, p := range franckImages(t)[:3] {
			img := readImage(t, p)
			faces, err := d.Detect(img)
			img.Close()
			if err != nil || len(faces) == 0 {
				t.Fatalf("%s: %d faces, %v", p, len(faces), err)
			}
			f := faces[0]
			if f.Chip.Side() != tmpl.Size || f.Chip.Validate() != nil {
				t.Fatalf("%s %s: chip side %d (%d bytes), want %d", tmpl.Name, p, f.Chip.Side(), len(f.Chip.Pix), tmpl.Size)
			}
			if f.Crop.Side() != face.CropSize || f.Crop.Validate() != nil {
				t.Fatalf("%s: crop side %d, want %d", p, f.Crop.Side(), face.CropSize)
			}
			again, err := ChipFromCrop(f.Crop, tmpl)
			if err != nil {
				t.Fatal(err)
			}
			// Two bilinear resamplings against one: a small mean difference.
			var sum float64
			for i := range again.Pix {
				sum += math.Abs(float64(again.Pix[i]) - float64(f.Chip.Pix[i]))
			}
			if mean := sum / float64(len(again.Pix)); mean > 6 {
				t.Errorf("%s %s: chip from crop differs from the direct chip by %.2f grey levels on average", tmpl.Name, p, mean)
			} else {
				t.Logf("%s %s: chip from crop vs direct: mean abs difference %.2f", tmpl.Name, p, mean)
			}
		}
	}
	if _, err := ChipFromCrop(face.Chip{Size: 100, Pix: make([]uint8, 100*100*3)}, face.ArcFaceTemplate); err == nil {
		t.Error("a 100x100 crop was accepted")
	}
}

// TestCropTemplateCoversBothChips: every corner of the dlib and ArcFace
// chips maps inside the crop, so both can be cut from it.
func TestCropTemplateCoversBothChips(t *testing.T) {
	for _, tmpl := range []face.Template{face.DlibTemplate, face.ArcFaceTemplate} {
		s, ok := face.CropTemplate.Fit(tmpl.Points[:]) // chip -> crop
		if !ok {
			t.Fatal("degenerate")
		}
		n := float32(tmpl.Size)
		for _, c := range []face.Point{{X: 0, Y: 0}, {X: n, Y: 0}, {X: 0, Y: n}, {X: n, Y: n}} {
			p := s.Apply(c)
			if p.X < -0.5 || p.Y < -0.5 || p.X > face.CropSize+0.5 || p.Y > face.CropSize+0.5 {
				t.Errorf("%s: chip corner %v lands at %v, outside the %d crop", tmpl.Name, c, p, face.CropSize)
			}
		}
		if tmpl.Name == face.ArcFaceTemplate.Name && s.Scale() < 1 {
			t.Errorf("the crop has less resolution than the ArcFace chip (scale %.2f)", s.Scale())
		}
	}
}
