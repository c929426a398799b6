package detect

import (
	"fmt"
	"image"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// benchFrame is faceapi's sample1.jpg (3 faces) resized to w x h.
func benchFrame(b *testing.B, w, h int) gocv.Mat {
	img := readImage(b, filepath.Join(mediaDir(b), "faceapi", "sample1.jpg"))
	defer img.Close()
	out := gocv.NewMat()
	gocv.Resize(img, &out, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	return out
}

// BenchmarkDetect: the whole Detect call per frame (detection, then
// landmarks, alignment and quality for each of the 3 faces), and the
// detection step alone.
func BenchmarkDetect(b *testing.B) {
	for _, backend := range []string{BackendDNN, BackendHaar} {
		d := newTestDetector(b, func(o *Options) { o.Backend = backend })
		for _, sz := range []image.Point{{640, 480}, {1280, 720}} {
			frame := benchFrame(b, sz.X, sz.Y)
			b.Run(fmt.Sprintf("%s/%dx%d/full", backend, sz.X, sz.Y), func(b *testing.B) {
				faces := 0
				for i := 0; i < b.N; i++ {
					f, err := d.Detect(frame)
					if err != nil {
						b.Fatal(err)
					}
					faces += len(f)
				}
				b.ReportMetric(float64(faces)/float64(b.N), "faces/frame")
			})
			b.Run(fmt.Sprintf("%s/%dx%d/detect-only", backend, sz.X, sz.Y), func(b *testing.B) {
				w := <-d.pool
				defer func() { d.pool <- w }()
				for i := 0; i < b.N; i++ {
					if backend == BackendHaar {
						d.detectHaar(w, frame)
					} else if _, err := d.detectDNN(w, frame); err != nil {
						b.Fatal(err)
					}
				}
			})
			frame.Close()
		}
	}
}

// BenchmarkAlign: per face, landmarks (68-point model), 5-point similarity
// fit, warp to the 150x150 chip, and quality; and the warp alone.
func BenchmarkAlign(b *testing.B) {
	d := newTestDetector(b, nil)
	frame := benchFrame(b, 1280, 720)
	defer frame.Close()
	w := <-d.pool
	defer func() { d.pool <- w }()
	dets, err := d.detectDNN(w, frame)
	if err != nil || len(dets) == 0 {
		b.Fatalf("%d faces, %v", len(dets), err)
	}
	b.Run("landmarks+align+quality", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if f := d.describe(w, frame, dets[i%len(dets)]); !f.Aligned {
				b.Fatal("not aligned")
			}
		}
	})
	f := d.describe(w, frame, dets[0])
	b.Run("warp", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			AlignChip(frame, f.Landmarks)
		}
	})
}
