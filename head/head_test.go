package head

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand"
	"testing"
)

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func unit(v []float32) []float32 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / math.Sqrt(ss))
	}
	return out
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

func TestIdentityProjectsToUnitRaw(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for layers := 1; layers <= MaxLayers; layers++ {
		h, err := New(Dim, layers)
		if err != nil {
			t.Fatal(err)
		}
		if !h.IsIdentity() {
			t.Fatalf("%d layers: fresh head is not the identity", layers)
		}
		for k := 0; k < 5; k++ {
			raw := randVec(r, Dim)
			got := h.Project(raw)
			if d := maxAbsDiff(got, unit(raw)); d > 1e-6 {
				t.Errorf("%d layers: identity head differs from raw/|raw| by %g", layers, d)
			}
		}
	}
	if !Identity().IsIdentity() || Identity().Dim() != Dim || Identity().NumLayers() != 1 {
		t.Fatal("Identity() is not the 128-d single-layer identity")
	}
}

// TestProjectHandComputed checks a 2-d, two-layer head against values worked
// out by hand, including the PReLU on a negative channel.
func TestProjectHandComputed(t *testing.T) {
	h, err := FromLayers(2, []Layer{
		// y = x·W1 + b1 with W1 = [[1,2],[3,4]] (rows = inputs), b1 = [0.5, -3]
		{W: []float32{1, 2, 3, 4}, B: []float32{0.5, -3}, Alpha: []float32{1, 0.25}},
		// z = y·W2 with W2 = [[0,1],[1,0]] (swap)
		{W: []float32{0, 1, 1, 0}, B: []float32{0, 0}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// raw = (3,4): unit = (0.6, 0.8); y = (0.6+2.4+0.5, 1.2+3.2-3) = (3.5, 1.4):
	// both positive, PReLU passes; swap -> (1.4, 3.5); unit -> /3.7696...
	got := h.Project([]float32{3, 4})
	n := math.Hypot(1.4, 3.5)
	want := []float32{float32(1.4 / n), float32(3.5 / n)}
	if d := maxAbsDiff(got, want); d > 1e-6 {
		t.Fatalf("Project(3,4) = %v, want %v", got, want)
	}
	// raw = (0,-1): y = (-3+0.5, -4-3) = (-2.5, -7); PReLU -> (-2.5, -1.75);
	// swap -> (-1.75, -2.5).
	got = h.Project([]float32{0, -1})
	n = math.Hypot(1.75, 2.5)
	want = []float32{float32(-1.75 / n), float32(-2.5 / n)}
	if d := maxAbsDiff(got, want); d > 1e-6 {
		t.Fatalf("Project(0,-1) = %v, want %v", got, want)
	}
}

func TestProjectBadInput(t *testing.T) {
	h := Identity()
	if got := h.Project(make([]float32, 5)); got != nil {
		t.Fatalf("wrong length: got %v, want nil", got)
	}
	if _, err := h.ProjectChecked(make([]float32, 127)); !errors.Is(err, ErrDim) {
		t.Fatalf("wrong length: err %v, want ErrDim", err)
	}
	z := h.Project(make([]float32, Dim))
	for _, v := range z {
		if v != 0 {
			t.Fatalf("zero input: got non-zero output %v", z)
		}
	}
	nan := make([]float32, Dim)
	nan[3] = float32(math.NaN())
	for _, v := range h.Project(nan) {
		if v != 0 {
			t.Fatalf("NaN input: got %v, want zeros", v)
		}
	}
}

func TestFromLayersValidates(t *testing.T) {
	good := func() []Layer { h, _ := New(3, 2); return h.Layers() }
	cases := []struct {
		name   string
		dim    int
		layers func() []Layer
	}{
		{"no layers", 3, func() []Layer { return nil }},
		{"too many", 3, func() []Layer { return make([]Layer, MaxLayers+1) }},
		{"bad dim", 0, good},
		{"short W", 3, func() []Layer { l := good(); l[0].W = l[0].W[:8]; return l }},
		{"short B", 3, func() []Layer { l := good(); l[1].B = l[1].B[:2]; return l }},
		{"missing alpha", 3, func() []Layer { l := good(); l[0].Alpha = nil; return l }},
		{"alpha on last", 3, func() []Layer { l := good(); l[1].Alpha = []float32{1, 1, 1}; return l }},
		{"NaN weight", 3, func() []Layer { l := good(); l[1].W[4] = float32(math.NaN()); return l }},
		{"Inf slope", 3, func() []Layer { l := good(); l[0].Alpha[0] = float32(math.Inf(1)); return l }},
	}
	for _, c := range cases {
		if _, err := FromLayers(c.dim, c.layers()); !errors.Is(err, ErrShape) {
			t.Errorf("%s: err %v, want ErrShape", c.name, err)
		}
	}
	// FromLayers copies: changing the input later does not change the head.
	l := good()
	h, err := FromLayers(3, l)
	if err != nil {
		t.Fatal(err)
	}
	l[0].W[0] = 42
	if !h.IsIdentity() {
		t.Fatal("FromLayers did not copy its input")
	}
}

func trainedLike(t *testing.T, dim, layers int, seed int64) *Head {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	h, _ := New(dim, layers)
	ls := h.Layers()
	for i := range ls {
		for j := range ls[i].W {
			ls[i].W[j] += 0.05 * float32(r.NormFloat64())
		}
		for j := range ls[i].B {
			ls[i].B[j] = 0.01 * float32(r.NormFloat64())
		}
		for j := range ls[i].Alpha {
			ls[i].Alpha[j] = 0.5 + 0.5*r.Float32()
		}
	}
	out, err := FromLayers(dim, ls)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMarshalRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, layers := range []int{1, 2, 3} {
		h := trainedLike(t, Dim, layers, int64(layers))
		b, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != encodedSize(Dim, layers) {
			t.Fatalf("%d layers: %d bytes, want %d", layers, len(b), encodedSize(Dim, layers))
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%d layers: %v", layers, err)
		}
		raw := randVec(r, Dim)
		if d := maxAbsDiff(h.Project(raw), got.Project(raw)); d != 0 {
			t.Fatalf("%d layers: round trip changed the projection by %g", layers, d)
		}
		var viaIface Head
		if err := viaIface.UnmarshalBinary(b); err != nil || viaIface.NumLayers() != layers {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
	}
}

// reseal rewrites the checksum so a test can reach the checks behind it.
func reseal(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}

func TestUnmarshalCorrupt(t *testing.T) {
	good, err := trainedLike(t, 4, 2, 7).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"short header", good[:10], ErrCorrupt},
		{"truncated", good[:len(good)-9], ErrCorrupt},
		{"padded", append(append([]byte(nil), good...), 0), ErrCorrupt},
		{"bad magic", mod(func(b []byte) []byte { b[0] = 'X'; return b }), ErrCorrupt},
		{"future version", mod(func(b []byte) []byte { b[4] = 9; return b }), ErrVersion},
		{"zero layers", mod(func(b []byte) []byte { b[6], b[7] = 0, 0; return b }), ErrCorrupt},
		{"huge dim", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 1<<30); return b }), ErrCorrupt},
		{"flags", mod(func(b []byte) []byte { b[12] = 1; return b }), ErrCorrupt},
		{"bit flip in weights", mod(func(b []byte) []byte { b[headerSize+5] ^= 0x10; return b }), ErrChecksum},
		{"bit flip in checksum", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrChecksum},
		{"NaN weight, valid checksum", mod(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[headerSize:], math.Float32bits(float32(math.NaN())))
			return reseal(b)
		}), ErrCorrupt},
	}
	for _, c := range cases {
		if _, err := Unmarshal(c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, l := range []int{1, 2} {
		h, _ := New(3, l)
		b, _ := h.Marshal()
		f.Add(b)
	}
	f.Add([]byte("EDHD"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Unmarshal(data)
		if err != nil {
			return
		}
		// Anything accepted must re-encode to the same bytes and project safely.
		b, err := h.Marshal()
		if err != nil || string(b) != string(data) {
			t.Fatalf("accepted data does not round-trip (err %v)", err)
		}
		_ = h.Project(make([]float32, h.Dim()))
	})
}

func BenchmarkProject(b *testing.B) {
	for _, layers := range []int{1, 2} {
		h, _ := New(Dim, layers)
		raw := randVec(rand.New(rand.NewSource(1)), Dim)
		b.Run(map[int]string{1: "1layer", 2: "2layers"}[layers], func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				h.Project(raw)
			}
		})
	}
}
