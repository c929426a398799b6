package facefile

import (
	"fmt"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/face"
)

// OutputName is the base name (without extension) for the files written
// for path: its own base name, with a counter when two inputs share it
// (used holds the names given so far).
func OutputName(path string, used map[string]int) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	used[base]++
	if n := used[base]; n > 1 {
		return fmt.Sprintf("%s-%d", base, n)
	}
	return base
}

// DetectAndWrite detects the faces of an image file with det and, for the
// directories given (""; none), writes the image with the faces drawn
// (annotateDir/name.png) and each face's chip (chipDir/name-N.png).
func DetectAndWrite(det *detect.Detector, path, name, annotateDir, chipDir string) ([]face.Face, error) {
	img, err := readImage(path)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	faces, err := det.Detect(img)
	if err != nil {
		return nil, err
	}
	if annotateDir != "" {
		detect.Draw(&img, faces)
		out := filepath.Join(annotateDir, name+".png")
		if ok := gocv.IMWrite(out, img); !ok {
			return faces, fmt.Errorf("write %s failed", out)
		}
	}
	if chipDir != "" {
		for i, f := range faces {
			m, err := gocv.NewMatFromBytes(f.Chip.Side(), f.Chip.Side(), gocv.MatTypeCV8UC3, f.Chip.Pix)
			if err != nil {
				return faces, err
			}
			gocv.CvtColor(m, &m, gocv.ColorBGRToRGB) // RGB -> BGR for imwrite
			out := filepath.Join(chipDir, fmt.Sprintf("%s-%d.png", name, i))
			ok := gocv.IMWrite(out, m)
			m.Close()
			if !ok {
				return faces, fmt.Errorf("write %s failed", out)
			}
		}
	}
	return faces, nil
}
