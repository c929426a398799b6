package infer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/edged-dev/edged/face"
)

// repoRoot is the checkout's root, seen from this package's directory.
const repoRoot = ".."

func goldenDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(repoRoot, "..", "shared", "golden")
	if _, err := os.Stat(filepath.Join(d, "embeddings.json")); err != nil {
		t.Skipf("golden files not available (%v): they live in ../shared/golden next to the checkout", err)
	}
	return d
}

func modelDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("EDGED_MODELS")
	if d == "" {
		d = filepath.Join(repoRoot, ".deps", "models")
	}
	if _, err := os.Stat(filepath.Join(d, ModelFile)); err != nil {
		t.Skipf("model not available (%v): run `make setup`", err)
	}
	return d
}

type goldenFile struct {
	RGBSHA256 map[string]string    `json:"rgb_sha256"`
	Vectors   map[string][]float32 `json:"vectors"`
}

func loadGolden(t testing.TB) (goldenFile, string) {
	t.Helper()
	dir := goldenDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "embeddings.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Vectors) == 0 {
		t.Fatal("embeddings.json has no vectors")
	}
	return g, dir
}

func loadChip(t testing.TB, path, wantSHA string) face.Chip {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c, err := face.ChipFromImage(img)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if wantSHA != "" {
		sum := sha256.Sum256(c.Pix)
		if got := hex.EncodeToString(sum[:]); got != wantSHA {
			t.Fatalf("%s: decoded RGB sha256 %s, want %s", path, got, wantSHA)
		}
	}
	return c
}
