package infer

import (
	"math"
	"path/filepath"
	"sort"
	"testing"

	"github.com/edged-dev/edged/face"
)

// TestGoldenEmbeddings reproduces every vector computed by face-api's own
// JavaScript implementation (tfjs CPU) from the same chips.
func TestGoldenEmbeddings(t *testing.T) {
	g, dir := loadGolden(t)
	e, err := NewEmbedder(modelDir(t), Options{Backbone: BackboneDlib})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	names := make([]string, 0, len(g.Vectors))
	for n := range g.Vectors {
		names = append(names, n)
	}
	sort.Strings(names)
	chips := make([]face.Chip, len(names))
	for i, n := range names {
		chips[i] = loadChip(t, filepath.Join(dir, n), g.RGBSHA256[n])
	}
	// Batch of all chips and one at a time: batching must not change results.
	batched, err := e.Embed(chips)
	if err != nil {
		t.Fatal(err)
	}
	var maxDiff float64
	for i, n := range names {
		single, err := e.Embed(chips[i : i+1])
		if err != nil {
			t.Fatal(err)
		}
		want := g.Vectors[n]
		for _, got := range []face.Embedding{batched[i], single[0]} {
			if len(got) != len(want) {
				t.Fatalf("%s: %d values, want %d", n, len(got), len(want))
			}
			for k := range want {
				maxDiff = math.Max(maxDiff, math.Abs(float64(got[k])-float64(want[k])))
			}
		}
	}
	t.Logf("max abs diff against face-api over %d vectors: %.3g", len(names), maxDiff)
	if maxDiff > 1e-5 {
		t.Fatalf("max abs diff %.3g > 1e-5", maxDiff)
	}
}
