package enroll

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/store"
)

// fakeFinder returns the faces registered for an image's bytes.
type fakeFinder struct {
	mu    sync.Mutex
	faces map[string][]face.Face
	err   map[string]error
}

func (f *fakeFinder) DetectBytes(data []byte) ([]face.Face, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err[string(data)]; err != nil {
		return nil, err
	}
	return f.faces[string(data)], nil
}

// fakeEmbedder maps a chip to the vector whose index is written in the
// chip's first two bytes.
type fakeEmbedder struct {
	vecs  [][]float32
	calls int
	fail  bool
}

func (e *fakeEmbedder) Embed(chips []face.Chip) ([]face.Embedding, error) {
	e.calls++
	if e.fail {
		return nil, errors.New("session failed")
	}
	out := make([]face.Embedding, len(chips))
	for i, c := range chips {
		out[i] = append(face.Embedding(nil), e.vecs[int(c.Pix[0])<<8|int(c.Pix[1])]...)
	}
	return out, nil
}

// world builds images whose faces embed to chosen vectors.
type world struct {
	t      *testing.T
	rng    *rand.Rand
	finder *fakeFinder
	emb    *fakeEmbedder
	n      int
}

func newWorld(t *testing.T) *world {
	return &world{t: t, rng: rand.New(rand.NewPCG(1, 2)), finder: &fakeFinder{faces: map[string][]face.Face{}, err: map[string]error{}}, emb: &fakeEmbedder{}}
}

// png returns a new, distinct 200x200 PNG image.
func (w *world) png() []byte {
	w.n++
	img := image.NewRGBA(image.Rect(0, 0, 200, 200))
	img.Set(0, 0, color.RGBA{uint8(w.n), uint8(w.n >> 8), 7, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		w.t.Fatal(err)
	}
	return buf.Bytes()
}

// chip returns a chip that embeds to v.
func (w *world) chip(v []float32) face.Chip {
	i := len(w.emb.vecs)
	w.emb.vecs = append(w.emb.vecs, v)
	pix := make([]uint8, face.ChipSize*face.ChipSize*3)
	pix[0], pix[1] = uint8(i>>8), uint8(i)
	return face.Chip{Pix: pix}
}

type fakeFace struct {
	vec     []float32
	box     image.Rectangle
	quality float32
	issue   string
	crop    face.Chip // Face.Crop, empty: none
}

// image registers an image with the given faces and returns its bytes.
func (w *world) image(faces ...fakeFace) []byte {
	data := w.png()
	var fs []face.Face
	for _, f := range faces {
		if f.box.Empty() {
			f.box = image.Rect(50, 50, 150, 150)
		}
		fs = append(fs, face.Face{Box: f.box, Score: 0.9, Chip: w.chip(f.vec), Crop: f.crop, Aligned: true,
			Quality: face.Quality{Score: f.quality, Issue: f.issue}})
	}
	w.finder.faces[string(data)] = fs
	return data
}

// good is one well-centred face of good quality.
func (w *world) good(v []float32) []byte { return w.image(fakeFace{vec: v, quality: 0.8}) }

func (w *world) unit() []float32 {
	v := make([]float32, 128)
	for i := range v {
		v[i] = float32(w.rng.NormFloat64())
	}
	return scale(v, 1.4)
}

// near returns a raw vector about d from v (both normalised).
func (w *world) near(v []float32, d float64) []float32 {
	n := w.unit()
	nv, nn := norm(v), norm(n)
	out := make([]float32, len(v))
	for i := range out {
		out[i] = nv[i] + float32(d)*nn[i]
	}
	return scale(out, 1.4)
}

func norm(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return scale(v, float32(1/math.Sqrt(s)))
}

func scale(v []float32, s float32) []float32 {
	out := make([]float32, len(v))
	for i := range v {
		out[i] = v[i] * s
	}
	return out
}

func newTestStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func (w *world) enroller(st *store.Store, opts Options) (*Enroller, *gallery.Gallery) {
	g := gallery.New(gallery.Options{Threshold: 0.4})
	return New(st, g, w.finder, w.emb, opts), g
}

type faceBox image.Rectangle

func toFaces(bs []faceBox) []face.Face {
	out := make([]face.Face, len(bs))
	for i, b := range bs {
		out[i] = face.Face{Box: image.Rectangle(b)}
	}
	return out
}
