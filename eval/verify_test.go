package eval

import (
	"bytes"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func verifyScoresOf(fold int, same, diff []float64) []VerifyScore {
	var s []VerifyScore
	for _, d := range same {
		s = append(s, VerifyScore{Distance: d, Same: true, Fold: fold})
	}
	for _, d := range diff {
		s = append(s, VerifyScore{Distance: d, Fold: fold})
	}
	return s
}

func verifyNear(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestVerifyBestThreshold(t *testing.T) {
	tests := []struct {
		name       string
		same, diff []float64
		thr, acc   float64
	}{
		{"separable: midpoint of the gap", []float64{0.1, 0.2, 0.3}, []float64{0.5, 0.6}, 0.4, 1},
		// sorted S.1 D.3 S.4 D.5 S.7 D.9: right = 3,4,3,4,3,4,3; first best at 0.2
		{"overlap: first best", []float64{0.1, 0.4, 0.7}, []float64{0.3, 0.5, 0.9}, 0.2, 4.0 / 6},
		// the tie group {S.4, D.4} keeps the count: best run 0.25..0.65
		{"plateau: its middle", []float64{0.1, 0.4}, []float64{0.4, 0.9}, 0.45, 0.75},
		{"ties across classes", []float64{0.2, 0.2}, []float64{0.2, 0.8}, 0.5, 0.75},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			thr, acc := VerifyBestThreshold(verifyScoresOf(0, tt.same, tt.diff))
			if !verifyNear(thr, tt.thr) || !verifyNear(acc, tt.acc) {
				t.Fatalf("threshold %v accuracy %v, want %v %v", thr, acc, tt.thr, tt.acc)
			}
		})
	}
}

func TestVerifyEvaluateCrossValidates(t *testing.T) {
	s := append(verifyScoresOf(0, []float64{0.1, 0.2}, []float64{0.6, 0.7}),
		verifyScoresOf(1, []float64{0.3, 0.5}, []float64{0.4, 0.8})...)
	r, err := VerifyEvaluate(s)
	if err != nil {
		t.Fatal(err)
	}
	// Fold 0 is scored at fold 1's best threshold (0.35): all right. Fold 1
	// at fold 0's (0.4): 0.5 (same) is rejected: 3/4.
	if !r.CrossValidated || r.Folds != 2 || r.Pairs != 8 {
		t.Fatalf("folds %d pairs %d cv %v", r.Folds, r.Pairs, r.CrossValidated)
	}
	if !verifyNear(r.FoldThreshold[0], 0.35) || !verifyNear(r.FoldThreshold[1], 0.4) {
		t.Fatalf("fold thresholds %v, want [0.35 0.4]", r.FoldThreshold)
	}
	if !verifyNear(r.FoldAccuracy[0], 1) || !verifyNear(r.FoldAccuracy[1], 0.75) {
		t.Fatalf("fold accuracies %v, want [1 0.75]", r.FoldAccuracy)
	}
	if !verifyNear(r.Accuracy, 0.875) || !verifyNear(r.AccuracyStd, 0.125) || !verifyNear(r.Threshold, 0.375) {
		t.Fatalf("accuracy %v +/- %v at %v, want 0.875 +/- 0.125 at 0.375", r.Accuracy, r.AccuracyStd, r.Threshold)
	}
}

func TestVerifyEvaluateSingleFold(t *testing.T) {
	r, err := VerifyEvaluate(verifyScoresOf(0, []float64{0.1, 0.4, 0.7}, []float64{0.3, 0.5, 0.9}))
	if err != nil {
		t.Fatal(err)
	}
	if r.CrossValidated || r.Folds != 1 || !verifyNear(r.Accuracy, 4.0/6) || !verifyNear(r.Threshold, 0.2) || r.AccuracyStd != 0 {
		t.Fatalf("got %+v", r)
	}
}

func TestVerifyTARAtFAR(t *testing.T) {
	var diff []float64
	for i := range 10 {
		diff = append(diff, 0.5+0.05*float64(i))
	}
	s := verifyScoresOf(0, []float64{0.2, 0.4, 0.52, 0.6}, diff)
	tests := []struct{ far, tar, thr float64 }{
		{0.1, 0.75, 0.55},   // one false accept allowed: accept d < 0.55
		{0.01, 0.5, 0.5},    // none allowed (resolution 1/10)
		{0.001, 0.5, 0.5},   //
		{0.35, 1, 0.65},     // three allowed
		{1, 1, math.Inf(1)}, // everything
	}
	for _, tt := range tests {
		tar, thr := VerifyTARAtFAR(s, tt.far)
		if !verifyNear(tar, tt.tar) || !(verifyNear(thr, tt.thr) || thr == tt.thr) {
			t.Errorf("FAR %v: TAR %v at %v, want %v at %v", tt.far, tar, thr, tt.tar, tt.thr)
		}
	}
}

func TestVerifyROC(t *testing.T) {
	tests := []struct {
		name       string
		same, diff []float64
		auc        float64
		points     int
	}{
		{"perfect", []float64{0.1}, []float64{0.2}, 1, 3},
		{"inverted", []float64{0.2}, []float64{0.1}, 0, 3},
		{"tied", []float64{0.1}, []float64{0.1}, 0.5, 2},
		{"mixed", []float64{0.1, 0.3}, []float64{0.2, 0.4}, 0.75, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roc := VerifyROC(verifyScoresOf(0, tt.same, tt.diff))
			if len(roc) != tt.points {
				t.Fatalf("%d points, want %d: %+v", len(roc), tt.points, roc)
			}
			last := roc[len(roc)-1]
			if roc[0].FAR != 0 || roc[0].TAR != 0 || last.FAR != 1 || last.TAR != 1 {
				t.Fatalf("curve does not run from (0,0) to (1,1): %+v", roc)
			}
			if a := VerifyAUC(roc); !verifyNear(a, tt.auc) {
				t.Fatalf("AUC %v, want %v", a, tt.auc)
			}
		})
	}
}

func TestVerifyEvaluateBadInput(t *testing.T) {
	tests := map[string][]VerifyScore{
		"empty":      nil,
		"only same":  verifyScoresOf(0, []float64{0.1, 0.2}, nil),
		"only diff":  verifyScoresOf(0, nil, []float64{0.1}),
		"NaN":        verifyScoresOf(0, []float64{math.NaN()}, []float64{0.1}),
		"empty fold": append(verifyScoresOf(0, []float64{0.1}, []float64{0.5}), verifyScoresOf(2, []float64{0.1}, []float64{0.5})...),
		"bad fold":   verifyScoresOf(-1, []float64{0.1}, []float64{0.5}),
	}
	for name, s := range tests {
		if _, err := VerifyEvaluate(s); !errors.Is(err, ErrVerifyInput) {
			t.Errorf("%s: err = %v, want ErrVerifyInput", name, err)
		}
	}
}

func TestParseLFWPairs(t *testing.T) {
	in := "2\t2\n" +
		"Ann\t1\t2\nBob 3 4\nAnn 1 Bob 2\nCy\t1\tDee\t10\n" +
		"\nEd 1 2\nEd 2 3\nEd 1 Fay 1\nFay 2 Gus 1\n"
	pairs, err := ParseLFWPairs(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 8 {
		t.Fatalf("%d pairs", len(pairs))
	}
	want := LFWPair{A: filepath.Join("Cy", "Cy_0001.jpg"), B: filepath.Join("Dee", "Dee_0010.jpg"), Same: false, Fold: 0}
	if pairs[3] != want {
		t.Fatalf("pair 3 = %+v, want %+v", pairs[3], want)
	}
	if p := pairs[4]; !p.Same || p.Fold != 1 || p.A != filepath.Join("Ed", "Ed_0001.jpg") {
		t.Fatalf("pair 4 = %+v", p)
	}
	if p := pairs[7]; p.Same || p.Fold != 1 {
		t.Fatalf("pair 7 = %+v", p)
	}

	bad := map[string]string{
		"no header":          "",
		"bad header":         "ten folds\n",
		"matched as 4":       "1 1\nA 1 B 2\nC 1 D 2\n",
		"mismatched as 3":    "1 1\nA 1 2\nC 1 2\n",
		"too few":            "1 2\nA 1 2\nB 1 2\nC 1 D 2\n",
		"too many":           "1 1\nA 1 2\nC 1 D 2\nE 1 2\n",
		"bad number":         "1 1\nA 1 x\nC 1 D 2\n",
		"path in name":       "1 1\n../A 1 2\nC 1 D 2\n",
		"zero image":         "1 1\nA 0 2\nC 1 D 2\n",
		"negative pair size": "1 -1\n",
	}
	for name, in := range bad {
		if _, err := ParseLFWPairs(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseLFWDevPairs(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "shared", "data", "lfw-dev", "pairs.txt"))
	if err != nil {
		t.Skipf("LFW dev data not available: %v", err)
	}
	defer f.Close()
	pairs, err := ParseLFWPairs(f)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for _, p := range pairs {
		if p.Same {
			same++
		}
		if p.Fold != 0 {
			t.Fatalf("fold %d in a one-fold file", p.Fold)
		}
	}
	if len(pairs) != 600 || same != 300 {
		t.Fatalf("%d pairs, %d same; want 600, 300", len(pairs), same)
	}
}

func TestVerifyROCPNG(t *testing.T) {
	roc := VerifyROC(verifyScoresOf(0, []float64{0.1, 0.3, 0.35}, []float64{0.2, 0.4, 0.5}))
	var buf bytes.Buffer
	if err := VerifyROCPNG(&buf, roc); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 480 {
		t.Fatalf("size %v", b)
	}
	red := 0
	for y := 0; y < 480; y++ {
		for x := 0; x < 640; x++ {
			r, g, _, _ := img.At(x, y).RGBA()
			if r>>8 == 200 && g>>8 == 30 {
				red++
			}
		}
	}
	if red < 200 {
		t.Fatalf("curve has %d pixels", red)
	}
	if err := VerifyROCPNG(&buf, nil); !errors.Is(err, ErrVerifyInput) {
		t.Fatalf("empty curve: %v", err)
	}
}
