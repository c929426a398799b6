package eval

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestFewShotScore(t *testing.T) {
	known := []FewShotProbe{
		{Truth: "a", Predicted: "a", Distance: 0.20, Eligible: true, Accepted: true},
		{Truth: "a", Predicted: "a", Distance: 0.30, Eligible: true, Accepted: true},
		{Truth: "b", Predicted: "b", Distance: 0.36, Eligible: true, Accepted: false}, // beyond the threshold
		{Truth: "b", Predicted: "a", Distance: 0.25, Eligible: true, Accepted: true},  // wrong person
		{Truth: "c", Predicted: "c", Distance: 0.10, Eligible: false},                 // refused: ambiguous
		{Truth: "c"}, // no face found
	}
	// 100 strangers: the nearest three at 0.28, 0.33, 0.34, the rest far.
	var unknown []FewShotProbe
	for i := 0; i < 100; i++ {
		d := 0.6
		switch i {
		case 0:
			d = 0.28
		case 1:
			d = 0.33
		case 2:
			d = 0.34
		}
		unknown = append(unknown, FewShotProbe{Predicted: "a", Distance: d, Eligible: true, Accepted: d <= 0.35})
	}
	unknown = append(unknown, FewShotProbe{Predicted: "b", Distance: 0.05, Eligible: false}) // near but refused
	r := FewShotScore(3, known, unknown, 0.35)
	// top-1: a, a, b, c (refused but nearest right) = 4 of 6.
	want := FewShotResult{Shots: 3, Probes: 6, UnknownProbes: 101, Top1: 4.0 / 6, DIRAtThresh: 2.0 / 6, FalseAccept: 3.0 / 101, Threshold: 0.35}
	// FAR 1% of 101 strangers = 1 accepted: threshold just below 0.33, so
	// the probes at 0.20 and 0.30 count (0.36 is beyond, the wrong one and
	// the ineligible one never count).
	want.DIRAtFAR1 = 2.0 / 6
	// FAR 0.1%: nobody accepted, threshold just below 0.28: only 0.20.
	want.DIRAtFAR01 = 1.0 / 6
	if r != want {
		t.Fatalf("got  %+v\nwant %+v", r, want)
	}
	_, thr := FewShotDIRAtFAR(known, unknown, 0.01)
	if !(thr < 0.33 && thr > 0.329) {
		t.Fatalf("threshold at FAR 1%% = %v", thr)
	}
	// No stranger near enough to matter: every eligible right probe counts.
	if d, thr := FewShotDIRAtFAR(known, nil, 0.01); d != 3.0/6 || !math.IsInf(thr, 1) {
		t.Fatalf("no strangers: %v %v", d, thr)
	}
	if d, _ := FewShotDIRAtFAR(nil, unknown, 0.01); d != 0 {
		t.Fatalf("no known probes: %v", d)
	}
}

func TestFewShotJSONKeys(t *testing.T) {
	ft := FewShotResult{Shots: 1}
	b, err := json.Marshal(FewShotReport{Backbone: "mobilefacenet", People: 2, Strangers: 3, SeenStrangers: 1,
		Results: []FewShotEntry{{FewShotResult: FewShotResult{Shots: 1}, Finetuned: &ft, Guard: "activated"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"backbone":"mobilefacenet"`, `"people":2`, `"strangers":3`, `"seen_strangers":1`, `"shots":1`, `"probes":`, `"unknown_probes":`, `"top1":`,
		`"dir_at_far_0.01":`, `"dir_at_far_0.001":`, `"dir_at_threshold":`, `"false_accept_rate":`, `"threshold":`,
		`"finetuned":{"shots":1`, `"guard":"activated"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s missing from %s", k, b)
		}
	}
}

func TestFewShotConfusions(t *testing.T) {
	known := []FewShotProbe{
		{Truth: "a", Predicted: "b"}, {Truth: "a", Predicted: "b"}, {Truth: "c", Predicted: "c"}, {Truth: "c"},
	}
	unknown := []FewShotProbe{{Predicted: "a", Accepted: true}, {Predicted: "a", Accepted: false}}
	got := FewShotConfusions(known, unknown)
	want := []FewShotConfusion{{"a", "b", 2}, {"", "a", 1}, {"c", "(no face)", 1}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
}
