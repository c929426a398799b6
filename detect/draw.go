package detect

import (
	"fmt"
	"image"
	"image/color"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/face"
)

// Draw annotates a BGR frame in place: the box of each face (green when
// aligned with no quality issue, orange otherwise), its five landmarks (red
// eyes, blue nose and mouth corners) and its score and quality.
func Draw(img *gocv.Mat, faces []face.Face) {
	thick := max(1, min(img.Cols(), img.Rows())/400)
	for _, f := range faces {
		c := color.RGBA{0, 200, 0, 0}
		if !f.Aligned || f.Quality.Issue != "" {
			c = color.RGBA{0, 140, 255, 0}
		}
		gocv.Rectangle(img, f.Box, c, thick)
		for i, p := range f.Landmarks {
			lc := color.RGBA{255, 0, 0, 0}
			if i == face.RightEye || i == face.LeftEye {
				lc = color.RGBA{0, 0, 255, 0}
			}
			gocv.Circle(img, image.Pt(int(p.X+0.5), int(p.Y+0.5)), 1+thick, lc, -1)
		}
		label := fmt.Sprintf("%.2f q%.2f", f.Score, f.Quality.Score)
		if f.Quality.Issue != "" {
			label += " " + f.Quality.Issue
		}
		gocv.PutText(img, label, image.Pt(f.Box.Min.X, max(12, f.Box.Min.Y-4)), gocv.FontHersheySimplex, 0.4*float64(thick), c, thick)
	}
}
