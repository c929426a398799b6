package eval

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// ErrVerifyInput is returned for verification scores that cannot be
// evaluated (no pairs, a class missing, a fold with no pairs, NaN).
var ErrVerifyInput = errors.New("invalid verification scores")

// VerifyScore is one scored verification pair: the distance between the
// two faces' embeddings (smaller = more alike), whether they are the same
// person, and the fold the pair belongs to (0-based).
type VerifyScore struct {
	Distance float64
	Same     bool
	Fold     int
}

// VerifyResult holds the figures of a verification run. Accepting a pair
// means predicting "same person": Distance < Threshold.
type VerifyResult struct {
	Pairs int
	Folds int
	// CrossValidated: with more than one fold, each fold is scored with the
	// threshold that is best on the other folds (the LFW View 2 protocol).
	// With one fold, Accuracy is at the best threshold for that fold itself
	// (optimistic; reported as such).
	CrossValidated bool
	Accuracy       float64   // mean over folds, 0..1
	AccuracyStd    float64   // population standard deviation over folds
	FoldAccuracy   []float64 // per fold
	FoldThreshold  []float64 // the threshold each fold was scored with
	Threshold      float64   // mean of FoldThreshold (the single best one for one fold)
	// TARAtFAR1 and TARAtFAR01 are the true accept rates over all pairs at
	// the thresholds that accept at most 1% and 0.1% of different-person
	// pairs; ThresholdAtFAR1/01 are those thresholds.
	TARAtFAR1, TARAtFAR01             float64
	ThresholdAtFAR1, ThresholdAtFAR01 float64
	AUC                               float64 // area under the ROC curve
	ROC                               []VerifyROCPoint
}

// VerifyROCPoint is one point of the ROC curve: at Threshold, the share of
// same-person pairs accepted (TAR) and of different-person pairs accepted
// (FAR).
type VerifyROCPoint struct {
	Threshold float64
	FAR, TAR  float64
}

// VerifyEvaluate computes the verification figures from scored pairs.
func VerifyEvaluate(scores []VerifyScore) (VerifyResult, error) {
	if err := verifyCheck(scores); err != nil {
		return VerifyResult{}, err
	}
	folds := 0
	for _, s := range scores {
		folds = max(folds, s.Fold+1)
	}
	byFold := make([][]VerifyScore, folds)
	for _, s := range scores {
		byFold[s.Fold] = append(byFold[s.Fold], s)
	}
	for k, f := range byFold {
		if len(f) == 0 {
			return VerifyResult{}, fmt.Errorf("%w: fold %d has no pairs", ErrVerifyInput, k+1)
		}
	}
	r := VerifyResult{Pairs: len(scores), Folds: folds, CrossValidated: folds > 1}
	for k := range byFold {
		var thr float64
		if folds == 1 {
			thr, _ = VerifyBestThreshold(scores)
		} else {
			var train []VerifyScore
			for j, f := range byFold {
				if j != k {
					train = append(train, f...)
				}
			}
			thr, _ = VerifyBestThreshold(train)
		}
		r.FoldThreshold = append(r.FoldThreshold, thr)
		r.FoldAccuracy = append(r.FoldAccuracy, VerifyAccuracy(byFold[k], thr))
	}
	r.Accuracy, r.AccuracyStd = meanStd(r.FoldAccuracy)
	r.Threshold, _ = meanStd(r.FoldThreshold)
	r.TARAtFAR1, r.ThresholdAtFAR1 = VerifyTARAtFAR(scores, 0.01)
	r.TARAtFAR01, r.ThresholdAtFAR01 = VerifyTARAtFAR(scores, 0.001)
	r.ROC = VerifyROC(scores)
	r.AUC = VerifyAUC(r.ROC)
	return r, nil
}

func verifyCheck(scores []VerifyScore) error {
	if len(scores) == 0 {
		return fmt.Errorf("%w: no pairs", ErrVerifyInput)
	}
	same := 0
	for i, s := range scores {
		if math.IsNaN(s.Distance) {
			return fmt.Errorf("%w: pair %d: distance is NaN", ErrVerifyInput, i)
		}
		if s.Fold < 0 {
			return fmt.Errorf("%w: pair %d: fold %d", ErrVerifyInput, i, s.Fold)
		}
		if s.Same {
			same++
		}
	}
	if same == 0 || same == len(scores) {
		return fmt.Errorf("%w: need both same-person and different-person pairs (%d of %d same)", ErrVerifyInput, same, len(scores))
	}
	return nil
}

// VerifyAccuracy is the share of pairs classified right at threshold:
// same-person pairs with Distance < threshold, the others at or above it.
func VerifyAccuracy(scores []VerifyScore, threshold float64) float64 {
	if len(scores) == 0 {
		return 0
	}
	right := 0
	for _, s := range scores {
		if (s.Distance < threshold) == s.Same {
			right++
		}
	}
	return float64(right) / float64(len(scores))
}

// VerifyBestThreshold returns the threshold with the highest accuracy on
// scores and that accuracy. Candidates are the midpoints between
// consecutive distinct distances (and points just outside the range); when
// several in a row tie, the middle of the first such run is taken, away
// from the pairs on either side.
func VerifyBestThreshold(scores []VerifyScore) (threshold, accuracy float64) {
	if len(scores) == 0 {
		return 0, 0
	}
	s := append([]VerifyScore(nil), scores...)
	sort.Slice(s, func(i, j int) bool { return s[i].Distance < s[j].Distance })
	// Start below every distance: everything rejected, so the different-
	// person pairs are right.
	right := 0
	for _, x := range s {
		if !x.Same {
			right++
		}
	}
	type cand struct {
		thr   float64
		right int
	}
	cands := []cand{{s[0].Distance - 1e-6, right}}
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j].Distance == s[i].Distance {
			if s[j].Same {
				right++
			} else {
				right--
			}
			j++
		}
		next := s[i].Distance + 1e-6
		if j < len(s) {
			next = (s[i].Distance + s[j].Distance) / 2
		}
		cands = append(cands, cand{next, right})
		i = j
	}
	best := 0
	for i, c := range cands {
		if c.right > cands[best].right {
			best = i
		}
	}
	end := best
	for end+1 < len(cands) && cands[end+1].right == cands[best].right {
		end++
	}
	threshold = (cands[best].thr + cands[end].thr) / 2
	return threshold, float64(cands[best].right) / float64(len(s))
}

// VerifyTARAtFAR returns the true accept rate at the largest threshold that
// accepts at most far of the different-person pairs (accept: Distance <
// threshold), and that threshold. With n different-person pairs the FAR
// resolution is 1/n: at far < 1/n no false accept is allowed.
func VerifyTARAtFAR(scores []VerifyScore, far float64) (tar, threshold float64) {
	var pos, neg []float64
	for _, s := range scores {
		if s.Same {
			pos = append(pos, s.Distance)
		} else {
			neg = append(neg, s.Distance)
		}
	}
	if len(pos) == 0 {
		return 0, 0
	}
	sort.Float64s(neg)
	allowed := int(math.Floor(far*float64(len(neg)) + 1e-9))
	threshold = math.Inf(1)
	if allowed < len(neg) {
		threshold = neg[allowed] // accepts exactly the `allowed` smaller ones (ties excluded)
	}
	n := 0
	for _, d := range pos {
		if d < threshold {
			n++
		}
	}
	return float64(n) / float64(len(pos)), threshold
}

// VerifyROC returns the ROC curve over all pairs, from (0,0) to (1,1), one
// point per distinct distance.
func VerifyROC(scores []VerifyScore) []VerifyROCPoint {
	s := append([]VerifyScore(nil), scores...)
	sort.Slice(s, func(i, j int) bool { return s[i].Distance < s[j].Distance })
	var npos, nneg int
	for _, x := range s {
		if x.Same {
			npos++
		} else {
			nneg++
		}
	}
	if npos == 0 || nneg == 0 {
		return nil
	}
	pts := []VerifyROCPoint{{Threshold: math.Inf(-1)}}
	tp, fp := 0, 0
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j].Distance == s[i].Distance {
			if s[j].Same {
				tp++
			} else {
				fp++
			}
			j++
		}
		// Threshold just above this distance accepts it (Distance < threshold).
		thr := math.Nextafter(s[i].Distance, math.Inf(1))
		pts = append(pts, VerifyROCPoint{Threshold: thr, FAR: float64(fp) / float64(nneg), TAR: float64(tp) / float64(npos)})
		i = j
	}
	return pts
}

// VerifyAUC is the area under a ROC curve (trapezoids).
func VerifyAUC(roc []VerifyROCPoint) float64 {
	var a float64
	for i := 1; i < len(roc); i++ {
		a += (roc[i].FAR - roc[i-1].FAR) * (roc[i].TAR + roc[i-1].TAR) / 2
	}
	return a
}

func meanStd(x []float64) (mean, std float64) {
	if len(x) == 0 {
		return 0, 0
	}
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		std += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(std / float64(len(x)))
}
