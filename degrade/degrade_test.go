package degrade

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

func testImage(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 90, 60))
	for y := 0; y < 60; y++ {
		for x := 0; x < 90; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 2), uint8(y * 3), 200, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestNightBytes(t *testing.T) {
	in := testImage(t)
	a, err := NightBytes(in, "dir/Some_Person_0001.jpg", Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NightBytes(in, "other/Some_Person_0001.jpg", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the same base name must give the same frame")
	}
	c, err := NightBytes(in, "Some_Person_0002.jpg", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Fatal("another name must give other noise")
	}
	img, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 90 || img.Bounds().Dy() != 60 {
		t.Fatalf("size %v, want the original 90x60", img.Bounds())
	}
	for y := 0; y < 60; y += 7 {
		for x := 0; x < 90; x += 7 {
			r, g, b, _ := img.At(x, y).RGBA()
			if r != g || g != b {
				t.Fatalf("pixel (%d,%d) is not grey: %d %d %d", x, y, r, g, b)
			}
		}
	}
	if _, err := Parse("day"); err == nil {
		t.Fatal("Parse accepted an unknown name")
	}
}
