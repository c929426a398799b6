package finetune

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func at(deg float64) []float32 {
	r := deg * math.Pi / 180
	return []float32{float32(math.Cos(r)), float32(math.Sin(r))}
}

// chord is the distance between unit vectors deg degrees apart.
func chord(deg float64) float64 { return 2 * math.Sin(deg/2*math.Pi/180) }

// TestEvaluateHandComputed checks every metric on unit vectors in the plane
// (distances are chords of the angles between them).
func TestEvaluateHandComputed(t *testing.T) {
	templates := [][]float32{at(0), at(90)}
	// Person 0 at 10 deg (right), person 1 at 80 deg (right), person 0 at
	// 50 deg (nearer person 1: wrong).
	probes := [][]float32{at(10), at(80), at(50)}
	probeLabels := []int{0, 1, 0}
	// Strangers: A at 45 and 40 deg, B at 180 deg.
	strangers := [][]float32{at(45), at(180), at(40)}
	strangerLabels := []int{0, 1, 0}
	m, err := Evaluate(templates, probes, probeLabels, strangers, strangerLabels)
	if err != nil {
		t.Fatal(err)
	}
	// Known scores: chord(10), chord(10), wrong. Stranger scores (nearest
	// template): chord(45), chord(90), chord(40). With 3 strangers FAR 1%
	// lets none in: threshold chord(40); both right probes are below it.
	// Genuine: chord(10) x2, chord(50). Impostors: chord(80) x2, chord(40),
	// and the strangers to both templates: chord(45) x2, chord(180),
	// chord(90), chord(40), chord(50): 9 in all; threshold chord(40).
	// AUC: chord(10) beats all 9 (twice); chord(50) beats chord(80) x2,
	// chord(90), chord(180) and ties chord(50): 18 + 4.5 of 27.
	// Unseen pairs: (45,40) genuine chord(5); (45,180), (180,40) impostors.
	want := Metrics{
		Top1: 2.0 / 3, DIRAtFAR1: 2.0 / 3, DIRAtFAR01: 2.0 / 3, TARAtFAR1: 2.0 / 3, TARAtFAR01: 2.0 / 3,
		AUC: 22.5 / 27, OpenSetAUC: 6.0 / 9, UnseenTARAtFAR1: 1, UnseenAUC: 1,
		Probes: 3, Strangers: 3, Impostors: 9,
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"top1", m.Top1, want.Top1}, {"dir1", m.DIRAtFAR1, want.DIRAtFAR1}, {"dir01", m.DIRAtFAR01, want.DIRAtFAR01},
		{"tar1", m.TARAtFAR1, want.TARAtFAR1}, {"tar01", m.TARAtFAR01, want.TARAtFAR01}, {"auc", m.AUC, want.AUC},
		{"open-set auc", m.OpenSetAUC, want.OpenSetAUC}, {"unseen tar", m.UnseenTARAtFAR1, want.UnseenTARAtFAR1},
		{"unseen auc", m.UnseenAUC, want.UnseenAUC},
		{"probes", float64(m.Probes), 3}, {"strangers", float64(m.Strangers), 3}, {"impostors", float64(m.Impostors), 9},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// d' uses the right known probes (chord 10 twice) and the stranger scores.
	ks := chord(10)
	ms := (chord(45) + chord(90) + chord(40)) / 3
	var vs float64
	for _, d := range []float64{chord(45), chord(90), chord(40)} {
		vs += (d - ms) * (d - ms) / 3
	}
	if wantD := (ms - ks) / math.Sqrt(vs/2); math.Abs(m.OpenSetDPrime-wantD) > 1e-5 {
		t.Errorf("d' = %v, want %v", m.OpenSetDPrime, wantD)
	}
	if len(m.Map()) != 16 {
		t.Errorf("Map has %d keys", len(m.Map()))
	}
}

func TestEvaluateNotEnoughData(t *testing.T) {
	one := [][]float32{at(0)}
	two := [][]float32{at(0), at(90)}
	for name, err := range map[string]error{
		"one template": func() error { _, err := Evaluate(one, one, []int{0}, one, []int{0}); return err }(),
		"no probes":    func() error { _, err := Evaluate(two, nil, nil, one, []int{0}); return err }(),
		"no strangers": func() error { _, err := Evaluate(two, one, []int{0}, nil, nil); return err }(),
	} {
		if !errors.Is(err, ErrNotEnoughData) {
			t.Errorf("%s: err %v, want ErrNotEnoughData", name, err)
		}
	}
	if _, err := Evaluate(two, one, []int{5}, one, []int{0}); !errors.Is(err, ErrOptions) {
		t.Errorf("bad label: err %v", err)
	}
}

func TestDecide(t *testing.T) {
	base := Metrics{Top1: 0.9, DIRAtFAR1: 0.8, DIRAtFAR01: 0.7, TARAtFAR1: 0.9, AUC: 0.99, OpenSetAUC: 0.95, UnseenTARAtFAR1: 0.9, UnseenAUC: 0.99}
	better := base
	better.DIRAtFAR1 += 0.05
	d := Decide(base, better, 0)
	if !d.Activate || math.Abs(d.Gain["dir_at_far_0.01"]-0.05) > 1e-12 || !strings.Contains(d.Reason, "dir_at_far_0.01 +0.0500") {
		t.Fatalf("better: %+v", d)
	}
	if d := Decide(base, base, 0); d.Activate || !strings.Contains(d.Reason, "no gain") {
		t.Fatalf("equal: %+v (a head that shows no gain stays out)", d)
	}
	worse := better
	worse.DIRAtFAR01 -= 0.001
	d = Decide(base, worse, 0)
	if d.Activate || !strings.Contains(d.Reason, "dir_at_far_0.001 0.7000 -> 0.6990") || strings.Contains(d.Reason, "dir_at_far_0.01 0.8") {
		t.Fatalf("worse: %+v", d)
	}
	if d := Decide(base, worse, 0.002); !d.Activate {
		t.Fatalf("within tolerance: %+v", d)
	}
	moreStrangers := better
	moreStrangers.FARAtThreshold += 0.001
	if d := Decide(base, moreStrangers, 0); d.Activate || !strings.Contains(d.Reason, "far_at_threshold") {
		t.Fatalf("more strangers let in: %+v", d)
	}
	// 1:1 figures are reported, not guarded.
	unseen := better
	unseen.UnseenAUC -= 0.01
	if d := Decide(base, unseen, 0); !d.Activate {
		t.Fatalf("unseen AUC: %+v", d)
	}
}
