package finetune

import (
	"slices"
	"testing"
)

func TestPairBatches(t *testing.T) {
	x := [][]float32{{0}, {1}, {2}, {3}}
	pairs := []Pair{{A: 0, B: 1, Y: 0}, {A: 0, B: 2, Y: 1}, {A: 3, B: 0, Y: 1}}
	bs := PairBatches(pairs, x, 2)
	if len(bs) != 2 {
		t.Fatalf("%d batches, want 2", len(bs))
	}
	// Batch 0: rows 0, 1, 2 once each; pairs refer to them by position.
	b := bs[0]
	if !slices.Equal(b.X, []float32{0, 1, 2}) || !slices.Equal(b.A, []int32{0, 0}) || !slices.Equal(b.B, []int32{1, 2}) || !slices.Equal(b.Y, []float32{0, 1}) {
		t.Errorf("batch 0 = %+v", b)
	}
	b = bs[1]
	if !slices.Equal(b.X, []float32{3, 0}) || !slices.Equal(b.A, []int32{0}) || !slices.Equal(b.B, []int32{1}) || !slices.Equal(b.Y, []float32{1}) {
		t.Errorf("batch 1 = %+v", b)
	}
	if got := PairBatches(nil, x, 2); len(got) != 0 {
		t.Errorf("no pairs: %d batches", len(got))
	}
}
