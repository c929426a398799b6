package imagefile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"testing"
)

func encode(t *testing.T, format string, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	var buf bytes.Buffer
	var err error
	if format == "png" {
		err = png.Encode(&buf, img)
	} else {
		err = jpeg.Encode(&buf, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCheck(t *testing.T) {
	jpg := encode(t, "jpeg", 40, 30)
	pngData := encode(t, "png", 20, 10)
	tests := []struct {
		name    string
		data    []byte
		want    Info
		wantErr error
	}{
		{"jpeg", jpg, Info{"jpeg", 40, 30}, nil},
		{"png", pngData, Info{"png", 20, 10}, nil},
		{"truncated jpeg body passes", jpg[:len(jpg)-20], Info{"jpeg", 40, 30}, nil},
		{"empty", nil, Info{}, ErrEmpty},
		{"text", []byte("hello, world"), Info{}, ErrNotImage},
		{"jpeg magic only", []byte{0xFF, 0xD8, 0xFF, 0xE0}, Info{}, ErrCorrupt},
		{"png magic only", pngData[:12], Info{}, ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Check(tc.data)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCheckTooLarge(t *testing.T) {
	// A PNG header claiming 20000x20000 pixels: IHDR only, no pixel data.
	data := encode(t, "png", 1, 1)
	hdr := append([]byte(nil), data[:33]...)
	// IHDR: length(4) "IHDR"(4) width(4) height(4) ... CRC over type+data.
	hdr[16], hdr[17], hdr[18], hdr[19] = 0, 0, 0x4E, 0x20
	hdr[20], hdr[21], hdr[22], hdr[23] = 0, 0, 0x4E, 0x20
	binary.BigEndian.PutUint32(hdr[29:33], crc32.ChecksumIEEE(hdr[12:29]))
	if _, err := Check(hdr); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestIsImageName(t *testing.T) {
	for name, want := range map[string]bool{"a.jpg": true, "b.PNG": true, "c.jpeg": true, "d.gif": false, "jpg": false, "e.mp4": false} {
		if got := IsImageName(name); got != want {
			t.Errorf("IsImageName(%q) = %v", name, got)
		}
	}
}
