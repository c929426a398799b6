package backend

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/service"
	"github.com/edged-dev/edged/store"
)

// Test doubles for detection and embedding, as in package service's
// tests: a photo's red value k is the identity of its one face (the k-th
// axis), the green value a little noise, and the blue value 1 asks for a
// face without a crop.

func photo(k, noise, noCrop uint8) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = k, noise, noCrop, 255
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

type fakeFinder struct{}

func (fakeFinder) DetectBytes(data []byte) ([]face.Face, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	r, g, b, _ := img.At(0, 0).RGBA()
	if r == 0 {
		return nil, nil
	}
	pix := make([]byte, face.ChipSize*face.ChipSize*3)
	pix[0], pix[1] = byte(r>>8), byte(g>>8)
	f := face.Face{Box: image.Rect(8, 8, 56, 56), Score: 0.99, Chip: face.Chip{Pix: pix}, Quality: face.Quality{Score: 0.9}}
	if b>>8 == 0 {
		f.Crop = rgbChip(drawFace(int(r>>8), int(g>>8)))
	}
	return []face.Face{f}, nil
}

type fakeEmbedder struct{}

func axis(k int, noise float32) []float32 {
	v := make([]float32, 128)
	v[k%128] = 1
	v[(k+7)%128] = noise
	return v
}

func (fakeEmbedder) Embed(chips []face.Chip) ([]face.Embedding, error) {
	out := make([]face.Embedding, len(chips))
	for i, c := range chips {
		out[i] = axis(int(c.Pix[0]), float32(c.Pix[1])/1000)
	}
	return out, nil
}

// drawFace draws a cartoon face (RGB, face.CropSize square) whose colours
// follow the identity k, so the page's thumbnails look like faces and
// differ by person.
func drawFace(k, variant int) *image.RGBA {
	n := face.CropSize
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	bg := color.RGBA{uint8(60 + 37*k%150), uint8(90 + 53*k%120), uint8(140 + 29*k%100), 255}
	skin := color.RGBA{uint8(225 - 9*(k%5)), uint8(180 - 11*(k%5)), uint8(150 - 13*(k%5)), 255}
	hair := color.RGBA{uint8(40 + 30*(k%4)), uint8(25 + 15*(k%4)), 20, 255}
	dark := color.RGBA{30, 30, 40, 255}
	lip := color.RGBA{170, 70, 80, 255}
	cx, cy := float64(n)/2+float64(variant%5-2)*2, float64(n)/2+8
	in := func(x, y, ex, ey, rx, ry float64) bool {
		dx, dy := (x-ex)/rx, (y-ey)/ry
		return dx*dx+dy*dy <= 1
	}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			fx, fy := float64(x), float64(y)
			c := bg
			switch {
			case in(fx, fy, cx, cy-28, 62, 52) && fy < cy-20:
				c = hair
			case in(fx, fy, cx-30, cy-6, 11, 7) || in(fx, fy, cx+30, cy-6, 11, 7):
				c = color.RGBA{250, 250, 250, 255}
				if in(fx, fy, cx-30, cy-6, 4, 5) || in(fx, fy, cx+30, cy-6, 4, 5) {
					c = dark
				}
			case in(fx, fy, cx, cy+38, 22, 7) && fy > cy+36:
				c = lip
			case in(fx, fy, cx, cy+14, 5, 14):
				c = color.RGBA{skin.R - 25, skin.G - 30, skin.B - 30, 255}
			case in(fx, fy, cx, cy, 58, 74):
				c = skin
			case fy > cy+68 && math.Abs(fx-cx) < 70:
				c = color.RGBA{bg.B / 2, bg.R / 2, bg.G / 2, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// rgbChip converts to a face.Chip (RGB, its side as Size).
func rgbChip(img *image.RGBA) face.Chip {
	c, err := face.ChipFromImage(img)
	if err != nil {
		panic(err)
	}
	return c
}

func pngOf(img image.Image) []byte {
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// fakeCameras is the running pipeline: door up, yard down.
type fakeCameras struct{}

func (fakeCameras) CameraStats() []pipeline.CameraStats {
	return []pipeline.CameraStats{{Camera: "door", Frames: 120, FPS: 9.84, Dropped: 3}, {Camera: "yard", Frames: 0}}
}

func (fakeCameras) TrackEmbeddings(camera string, track uint64) ([][]float32, bool) {
	if camera == "door" && track == 42 {
		return [][]float32{axis(9, 0.01)}, true
	}
	return nil, false
}

// frame draws a camera frame with a box and a name (what the daemon's
// GoCV implementation returns), as a JPEG.
func frame(_ context.Context, camera string) ([]byte, error) {
	if camera != "door" {
		return nil, mqtt.Errorf(mqtt.CodeUnknownCamera, "camera %q has no frame", camera)
	}
	img := image.NewRGBA(image.Rect(0, 0, 640, 360))
	for y := 0; y < 360; y++ {
		for x := 0; x < 640; x++ {
			img.SetRGBA(x, y, color.RGBA{uint8(40 + y/6), uint8(50 + x/12), 70, 255})
		}
	}
	f := drawFace(1, 0)
	for y := 0; y < face.CropSize; y++ {
		for x := 0; x < face.CropSize; x++ {
			img.Set(260+x, 80+y, f.At(x, y))
		}
	}
	green := color.RGBA{40, 220, 90, 255}
	for i := 0; i < 3; i++ {
		for x := 258; x < 446; x++ {
			img.SetRGBA(x, 78+i, green)
			img.SetRGBA(x, 266-i, green)
		}
		for y := 78; y < 267; y++ {
			img.SetRGBA(258+i, y, green)
			img.SetRGBA(445-i, y, green)
		}
	}
	var b bytes.Buffer
	err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80})
	return b.Bytes(), err
}

type fakeFinetune struct {
	mu    sync.Mutex
	state string
}

func (f *fakeFinetune) Trigger() {}
func (f *fakeFinetune) Start(context.Context, string, int, bool) (string, int, error) {
	return "job-1", 20, nil
}
func (f *fakeFinetune) State() string { f.mu.Lock(); defer f.mu.Unlock(); return f.state }

// world is a daemon without TensorFlow or cameras: a real store, gallery,
// unknown clustering, enroller and service, and the web backend on top.
type world struct {
	st       *store.Store
	g        *gallery.Gallery
	unknowns *gallery.Unknowns
	en       *enroll.Enroller
	svc      *service.Service
	b        *Backend
	ft       *fakeFinetune
}

func newWorld(t testing.TB) *world {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &world{st: st, g: gallery.New(gallery.Options{}), unknowns: gallery.NewUnknowns(gallery.UnknownOptions{}), ft: &fakeFinetune{}}
	w.en = enroll.New(st, w.g, fakeFinder{}, fakeEmbedder{}, enroll.Options{
		Events:   func(r enroll.Result) []store.OutboxEvent { return w.svc.EnrollEvents(r) },
		Unknowns: w.unknowns,
	})
	w.svc, err = service.New(service.Options{Device: "pi", Version: "test", Store: st, Gallery: w.g, Enroller: w.en,
		Unknowns: w.unknowns, Cameras: fakeCameras{}, Finetune: w.ft})
	if err != nil {
		t.Fatal(err)
	}
	w.b, err = New(Options{Service: w.svc, Store: st, Enroller: w.en, Gallery: w.g, Unknowns: w.unknowns, Frames: frame, Finetune: true})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// enroll enrolls a person from photos (the MQTT enroll with images).
func (w *world) enroll(t testing.TB, name string, photos ...[]byte) string {
	t.Helper()
	ims := make(mqtt.Images, len(photos))
	for i, p := range photos {
		ims[i] = mqtt.Image{Data: p, Format: "png", Width: 64, Height: 64}
	}
	res, err := w.svc.Enroll(context.Background(), mqtt.EnrollRequest{ID: "t", Name: name, Images: ims})
	if err != nil {
		t.Fatal(err)
	}
	return res.PersonID
}

// unknown files appearances of identity k as an unknown face (what the
// pipeline's unknown path does), with a crop each when crops is true.
func (w *world) unknown(t testing.TB, k, appearances int, crops bool) string {
	t.Helper()
	var id string
	for a := 0; a < appearances; a++ {
		at := time.Now().Add(time.Duration(a-appearances) * 7 * time.Minute)
		faces := []gallery.UnknownFace{{Embedding: axis(k, float32(a)/500), Quality: 0.9, Camera: "door", Time: at}}
		u, _, ok, err := w.en.ObserveUnknown(w.unknowns, faces)
		if err != nil || !ok {
			t.Fatalf("observe unknown: %v %v", ok, err)
		}
		id = u.ID
		if crops {
			if err := w.st.PutUnknownCrop(u.ID, pngOf(drawFace(k, a))); err != nil {
				t.Fatal(err)
			}
		}
	}
	return id
}

// head stores a head version for the fake 128-d backbone.
func (w *world) head(t testing.TB, note string, metrics map[string]float64, active bool) string {
	t.Helper()
	h, err := head.New(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hv := store.HeadVersion{Weights: b, Note: note, Metrics: metrics, Backbone: w.en.Backbone(), Active: active}
	if err := w.st.Update(func(tx *store.Tx) error { return tx.SaveHead(&hv) }); err != nil {
		t.Fatal(err)
	}
	return hv.ID
}

// observe is the daemon's event wiring: the service and the web backend
// both see the pipeline's events.
func (w *world) observe(e pipeline.Event) {
	w.svc.Observe(e)
	w.b.Observe(e)
}

// TestPartialLimitsKeepDefaults: the daemon passes only mqtt.max_payload;
// every other limit keeps its default (a zero name length refused every
// name typed on the page).
func TestPartialLimitsKeepDefaults(t *testing.T) {
	l := mqtt.Limits{MaxPayload: 1 << 20}.WithDefaults()
	if l.MaxPayload != 1<<20 || l.MaxNameLen != mqtt.DefaultLimits().MaxNameLen {
		t.Fatalf("limits %+v", l)
	}
	if err := (mqtt.EnrollRequest{ID: "r", Name: "Barack", FromUnknown: "unknown-1"}).Validate(l); err != nil {
		t.Fatalf("a plain name refused: %v", err)
	}
}
