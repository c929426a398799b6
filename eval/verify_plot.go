package eval

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
)

// VerifyROCPNG draws a ROC curve as a PNG (standard library only): FAR on a
// log axis from 0.1% to 100%, TAR on a linear axis, with grid lines, tick
// labels and the AUC. Points with FAR below 0.1% are drawn on the left edge.
func VerifyROCPNG(w io.Writer, roc []VerifyROCPoint) error {
	if len(roc) < 2 {
		return fmt.Errorf("%w: no ROC curve to draw", ErrVerifyInput)
	}
	const (
		width, height = 640, 480
		left, right   = 70, 20
		top, bottom   = 30, 50
		minLogFAR     = -3.0
	)
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	plotFill(img, img.Bounds(), color.RGBA{255, 255, 255, 255})
	// TAR axis: from a multiple of 0.1 below the TAR reached at FAR 0.1%
	// (the left edge) up to 1.
	minTAR := 0.0
	for _, p := range roc {
		if p.FAR <= 1e-3 {
			minTAR = math.Max(minTAR, p.TAR)
		}
	}
	lo := math.Max(0, math.Floor(minTAR*10-1e-9)/10)
	if lo > 0.9 {
		lo = 0.9
	}
	pw, ph := width-left-right, height-top-bottom
	px := func(far float64) int {
		lf := minLogFAR
		if far > 0 {
			lf = math.Max(minLogFAR, math.Log10(far))
		}
		return left + int(math.Round((lf-minLogFAR)/-minLogFAR*float64(pw)))
	}
	py := func(tar float64) int {
		t := math.Max(lo, tar)
		return top + ph - int(math.Round((t-lo)/(1-lo)*float64(ph)))
	}
	grid := color.RGBA{220, 220, 220, 255}
	ink := color.RGBA{0, 0, 0, 255}
	for _, far := range []float64{1e-3, 1e-2, 1e-1, 1} {
		x := px(far)
		plotLine(img, x, top, x, top+ph, grid)
		label := map[float64]string{1e-3: "0.1%", 1e-2: "1%", 1e-1: "10%", 1: "100%"}[far]
		plotText(img, x-plotTextWidth(label)/2, top+ph+8, label, ink)
	}
	for t := lo; t <= 1+1e-9; t += 0.02 {
		y := py(t)
		major := math.Abs(t*10-math.Round(t*10)) < 1e-6
		if major || 1-lo <= 0.2 {
			plotLine(img, left, y, left+pw, y, grid)
			l := fmt.Sprintf("%.2f", t)
			plotText(img, left-plotTextWidth(l)-6, y-5, l, ink)
		}
	}
	plotLine(img, left, top, left, top+ph, ink)
	plotLine(img, left, top+ph, left+pw, top+ph, ink)
	plotText(img, left+pw/2-plotTextWidth("FAR")/2, height-18, "FAR", ink)
	plotText(img, 8, top-22, "TAR", ink)
	auc := fmt.Sprintf("AUC %.4f", VerifyAUC(roc))
	plotText(img, left+pw-plotTextWidth(auc)-10, top+ph-20, auc, ink)

	curve := color.RGBA{200, 30, 30, 255}
	for i := 1; i < len(roc); i++ {
		a, b := roc[i-1], roc[i]
		// Step: FAR rises at constant TAR, then TAR rises.
		plotLine(img, px(a.FAR), py(a.TAR), px(b.FAR), py(a.TAR), curve)
		plotLine(img, px(b.FAR), py(a.TAR), px(b.FAR), py(b.TAR), curve)
	}
	return png.Encode(w, img)
}

func plotFill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// line draws a 2-pixel line (Bresenham).
func plotLine(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := plotAbs(x1-x0), -plotAbs(y1-y0)
	sx, sy := plotSign(x1-x0), plotSign(y1-y0)
	err := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		img.SetRGBA(x0+1, y0, c)
		img.SetRGBA(x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * err; e2 >= dy {
			err += dy
			x0 += sx
		} else {
			err += dx
			y0 += sy
		}
	}
}

func plotAbs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func plotSign(x int) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// plotGlyphs is a 3x5 pixel font for the labels, one row of 3 bits per string.
var plotGlyphs = map[rune][5]string{
	'0': {"###", "#.#", "#.#", "#.#", "###"},
	'1': {".#.", "##.", ".#.", ".#.", "###"},
	'2': {"###", "..#", "###", "#..", "###"},
	'3': {"###", "..#", ".##", "..#", "###"},
	'4': {"#.#", "#.#", "###", "..#", "..#"},
	'5': {"###", "#..", "###", "..#", "###"},
	'6': {"###", "#..", "###", "#.#", "###"},
	'7': {"###", "..#", ".#.", ".#.", ".#."},
	'8': {"###", "#.#", "###", "#.#", "###"},
	'9': {"###", "#.#", "###", "..#", "###"},
	'.': {"...", "...", "...", "...", ".#."},
	'%': {"#.#", "..#", ".#.", "#..", "#.#"},
	'A': {".#.", "#.#", "###", "#.#", "#.#"},
	'C': {"###", "#..", "#..", "#..", "###"},
	'F': {"###", "#..", "##.", "#..", "#.."},
	'R': {"##.", "#.#", "##.", "#.#", "#.#"},
	'T': {"###", ".#.", ".#.", ".#.", ".#."},
	'U': {"#.#", "#.#", "#.#", "#.#", "###"},
	' ': {"...", "...", "...", "...", "..."},
}

const plotGlyphScale = 2

func plotTextWidth(s string) int { return len([]rune(s)) * 4 * plotGlyphScale }

func plotText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, r := range s {
		g, ok := plotGlyphs[r]
		if ok {
			for row := range 5 {
				for col := range 3 {
					if g[row][col] == '#' {
						plotFill(img, image.Rect(x+col*plotGlyphScale, y+row*plotGlyphScale, x+(col+1)*plotGlyphScale, y+(row+1)*plotGlyphScale), c)
					}
				}
			}
		}
		x += 4 * plotGlyphScale
	}
}
