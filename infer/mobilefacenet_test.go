package infer

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/edged-dev/edged/face"
)

type mfnGolden struct {
	Chips map[string]struct {
		RGBSHA256 string    `json:"rgb_sha256"`
		Embedding []float32 `json:"embedding"`
	} `json:"chips"`
}

func mfnModelDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("EDGED_MODELS")
	if d == "" {
		d = filepath.Join(repoRoot, ".deps", "models")
	}
	if _, err := os.Stat(filepath.Join(d, MobileFaceNetFile)); err != nil {
		t.Skipf("MobileFaceNet not available (%v): run `make setup`", err)
	}
	return d
}

func unit(v []float32) []float64 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	n = math.Sqrt(n)
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x) / n
	}
	return out
}

// TestMobileFaceNetGolden reproduces LiteRT's outputs on the four golden
// chips (normalised, tolerance 1e-5), batched and one at a time, and with a
// batch size the file does not fix (it says 2).
func TestMobileFaceNetGolden(t *testing.T) {
	dir := filepath.Join(repoRoot, "..", "shared", "golden", "mobilefacenet")
	raw, err := os.ReadFile(filepath.Join(dir, "embeddings.json"))
	if err != nil {
		t.Skipf("golden files not available (%v): they live in ../shared/golden/mobilefacenet", err)
	}
	var g mfnGolden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	e, err := NewEmbedder(mfnModelDir(t), Options{Backbone: BackboneMobileFaceNet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if b := e.Backbone(); b.ID != BackboneMobileFaceNet || b.Dim != 192 || b.InputSize != 112 {
		t.Fatalf("backbone %+v", b)
	}
	names := make([]string, 0, len(g.Chips))
	for n := range g.Chips {
		names = append(names, n)
	}
	sort.Strings(names)
	chips := make([]face.Chip, 0, len(names)+1)
	for _, n := range names {
		chips = append(chips, loadChip(t, filepath.Join(dir, n+".png"), g.Chips[n].RGBSHA256))
	}
	chips = append(chips, chips[0]) // batch of 5: a size the file does not fix
	batched, err := e.Embed(chips)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for i, n := range names {
		single, err := e.Embed(chips[i : i+1])
		if err != nil {
			t.Fatal(err)
		}
		want := unit(g.Chips[n].Embedding)
		for _, got := range []face.Embedding{batched[i], single[0]} {
			if len(got) != 192 {
				t.Fatalf("%s: %d values", n, len(got))
			}
			for k, v := range unit(got) {
				worst = math.Max(worst, math.Abs(v-want[k]))
			}
		}
	}
	t.Logf("max abs diff of normalised outputs against LiteRT over %d chips: %.3g", len(names), worst)
	if worst > 1e-5 {
		t.Fatalf("max abs diff %.3g > 1e-5", worst)
	}
	// A 150x150 chip is refused with a clear error.
	if _, err := e.Embed([]face.Chip{{Pix: make([]uint8, 150*150*3)}}); !errors.Is(err, face.ErrChipSize) {
		t.Fatalf("150x150 chip: err = %v, want ErrChipSize", err)
	}
}

// TestMobileFaceNetRejectsBadFiles: a truncated or altered file is refused
// with ErrModelFile naming the file, before TensorFlow sees it.
func TestMobileFaceNetRejectsBadFiles(t *testing.T) {
	src := filepath.Join(mfnModelDir(t), MobileFaceNetFile)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"truncated": data[:len(data)/2],
		"flipped":   append(append([]byte(nil), data[:100]...), append([]byte{data[100] ^ 0xff}, data[101:]...)...),
		"empty":     nil,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, MobileFaceNetFile), bad, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadMobileFaceNet(dir)
		if !errors.Is(err, ErrModelFile) {
			t.Errorf("%s: err = %v, want ErrModelFile", name, err)
			continue
		}
		if want := filepath.Join(dir, MobileFaceNetFile); !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	// Past the checksum, the structural checks: a corrupt body parses to an
	// error naming the file, never a crash.
	cut := append([]byte(nil), data[:4096]...)
	if _, err := parseMobileFaceNet("x.tflite", cut); !errors.Is(err, ErrModelFile) || !strings.Contains(err.Error(), "x.tflite") {
		t.Errorf("truncated body: err = %v", err)
	}
}

func TestBackboneRegistry(t *testing.T) {
	b, err := Lookup("")
	if err != nil || b.ID != DefaultBackbone || DefaultBackbone != BackboneMobileFaceNet {
		t.Fatalf("Lookup(\"\") = %v, %v; want the default, mobilefacenet", b, err)
	}
	for _, id := range BackboneIDs() {
		b, err := Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		if b.Template.Size != b.InputSize || b.Dim < 1 || len(b.Files) == 0 || b.Space.Name != id {
			t.Errorf("%s: inconsistent entry %+v", id, b)
		}
	}
	if d, _ := Lookup("DLIB"); d == nil || d.Dim != 128 || d.InputSize != 150 {
		t.Errorf("dlib entry %+v", d)
	}
	if _, err := Lookup("resnet100"); !errors.Is(err, ErrBackbone) || !strings.Contains(err.Error(), "mobilefacenet") {
		t.Errorf("unknown id: err = %v, want ErrBackbone listing the known ids", err)
	}
}
