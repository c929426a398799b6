package gallery

import (
	"fmt"
	"testing"
)

// TestCodedRecallFaceLike measures how often the coded search finds the
// same nearest and second-nearest person as the exact scan, on face-like
// vectors, for several candidate counts (run with -v to see the table).
func TestCodedRecallFaceLike(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	rng := newRNG(31)
	fl := newFaceLike(rng, testDim)
	const n = 50_000
	vecs := make([]float32, 0, n*testDim)
	owner := make([]int32, n)
	centres := make([][]float32, n)
	for i := range centres {
		centres[i] = fl.next(rng)
		vecs = append(vecs, centres[i]...)
		owner[i] = int32(i)
	}
	exact := newIndex(testDim, vecs, owner, 0, nil)
	coded := newIndex(testDim, vecs, owner, 256, newRotation(testDim, 256, 0x5eed))
	const queries = 200
	type q struct {
		v       []float32
		genuine bool
	}
	var qs []q
	for i := 0; i < queries; i++ {
		if i%2 == 0 {
			qs = append(qs, q{near(rng, centres[rng.IntN(n)], 0.3), true})
		} else {
			qs = append(qs, q{fl.next(rng), false})
		}
	}
	for _, cand := range []int{512, 1024, 2048, 4096} {
		best, second, genuineMiss := 0, 0, 0
		for _, x := range qs {
			w := exact.search(x.v, searchParams{exclude: -1, workers: 2})
			g := coded.search(x.v, searchParams{exclude: -1, workers: 2, candidates: cand})
			if g.best.slot == w.best.slot {
				best++
			} else if x.genuine {
				genuineMiss++
			}
			if g.second.slot == w.second.slot {
				second++
			}
		}
		t.Logf("%s candidates of %d: best found %d/%d, second %d/%d, genuine faces missed %d",
			fmt.Sprint(cand), n, best, queries, second, queries, genuineMiss)
		if cand >= 1024 && genuineMiss > 0 {
			t.Errorf("%d candidates: %d genuine faces lost their person", cand, genuineMiss)
		}
	}
}
