package face

import (
	"errors"
	"image"
	"image/color"
	"testing"
)

func TestChipRoundTrip(t *testing.T) {
	img := image.NewNRGBA(image.Rect(10, 20, 10+ChipSize, 20+ChipSize)) // non-zero origin on purpose
	for y := 0; y < ChipSize; y++ {
		for x := 0; x < ChipSize; x++ {
			img.Set(10+x, 20+y, color.NRGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	c, err := ChipFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// Row-major HWC, channels R, G, B.
	if i := (7*ChipSize + 3) * 3; c.Pix[i] != 3 || c.Pix[i+1] != 7 || c.Pix[i+2] != 3^7 {
		t.Errorf("pixel (3,7) = %v", c.Pix[i:i+3])
	}
	back := c.Image()
	for _, p := range []image.Point{{0, 0}, {3, 7}, {149, 149}} {
		got := back.RGBAAt(p.X, p.Y)
		if want := (color.RGBA{uint8(p.X), uint8(p.Y), uint8(p.X ^ p.Y), 255}); got != want {
			t.Errorf("Image() at %v = %v, want %v", p, got, want)
		}
	}
}

func TestChipSizeErrors(t *testing.T) {
	if _, err := ChipFromImage(image.NewRGBA(image.Rect(0, 0, 150, 149))); !errors.Is(err, ErrChipSize) {
		t.Errorf("150x149 image: err = %v, want ErrChipSize", err)
	}
	for _, n := range []int{0, 150 * 150, 150*150*3 - 1, 150*150*3 + 1} {
		if err := (Chip{Pix: make([]uint8, n)}).Validate(); !errors.Is(err, ErrChipSize) {
			t.Errorf("%d bytes: err = %v, want ErrChipSize", n, err)
		}
	}
}
