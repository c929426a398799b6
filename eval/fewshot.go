package eval

import (
	"math"
	"sort"
)

// FewShotProbe is the outcome of matching one probe image against a
// few-shot gallery.
type FewShotProbe struct {
	// Truth is the probe's person, "" for a stranger (not enrolled).
	Truth string
	// Predicted is the nearest person ("" when no face was found or the
	// gallery is empty).
	Predicted string
	// Distance is the distance to Predicted.
	Distance float64
	// Eligible is false when the decision refused the face for a reason
	// that does not depend on the distance threshold (ambiguous margin,
	// negative sample, vote): such a probe is never accepted, whatever the
	// threshold.
	Eligible bool
	// Accepted is the decision at the gallery's own threshold.
	Accepted bool
}

// FewShotResult holds the figures of one shots setting. The JSON keys are
// a contract (edged eval fewshot --json).
type FewShotResult struct {
	Shots         int     `json:"shots"`
	Probes        int     `json:"probes"`
	UnknownProbes int     `json:"unknown_probes"`
	Top1          float64 `json:"top1"`
	DIRAtFAR1     float64 `json:"dir_at_far_0.01"`
	DIRAtFAR01    float64 `json:"dir_at_far_0.001"`
	DIRAtThresh   float64 `json:"dir_at_threshold"`
	FalseAccept   float64 `json:"false_accept_rate"`
	Threshold     float64 `json:"threshold"`
}

// FewShotScore computes the figures from matched probes: closed-set top-1
// (nearest person right, over known probes), the open-set detection and
// identification rate (right person AND accepted) at the thresholds where
// at most 1% and 0.1% of stranger probes are accepted as anyone, and the
// rates at the gallery's own threshold.
func FewShotScore(shots int, known, unknown []FewShotProbe, threshold float64) FewShotResult {
	r := FewShotResult{Shots: shots, Probes: len(known), UnknownProbes: len(unknown), Threshold: threshold}
	if len(known) > 0 {
		right, dir := 0, 0
		for _, p := range known {
			if p.Predicted != "" && p.Predicted == p.Truth {
				right++
				if p.Accepted {
					dir++
				}
			}
		}
		r.Top1 = float64(right) / float64(len(known))
		r.DIRAtThresh = float64(dir) / float64(len(known))
	}
	if len(unknown) > 0 {
		fa := 0
		for _, p := range unknown {
			if p.Accepted {
				fa++
			}
		}
		r.FalseAccept = float64(fa) / float64(len(unknown))
	}
	r.DIRAtFAR1, _ = FewShotDIRAtFAR(known, unknown, 0.01)
	r.DIRAtFAR01, _ = FewShotDIRAtFAR(known, unknown, 0.001)
	return r
}

// FewShotDIRAtFAR returns the detection and identification rate at the
// largest distance threshold that accepts at most far of the stranger
// probes (as anyone), and that threshold (+Inf when no threshold would
// accept too many strangers). Only the distance threshold moves; refusals
// for other reasons (Eligible false) stay refusals.
func FewShotDIRAtFAR(known, unknown []FewShotProbe, far float64) (dir, threshold float64) {
	if len(known) == 0 {
		return 0, 0
	}
	var ds []float64
	for _, p := range unknown {
		if p.Predicted != "" && p.Eligible {
			ds = append(ds, p.Distance)
		}
	}
	sort.Float64s(ds)
	allowed := int(math.Floor(far*float64(len(unknown)) + 1e-9))
	// Accept d <= t. With `allowed` strangers let in, t must stay below
	// the (allowed+1)-th nearest eligible stranger.
	t := math.Inf(1)
	if allowed < len(ds) {
		t = math.Nextafter(ds[allowed], math.Inf(-1))
	}
	n := 0
	for _, p := range known {
		if p.Predicted != "" && p.Predicted == p.Truth && p.Eligible && p.Distance <= t {
			n++
		}
	}
	return float64(n) / float64(len(known)), t
}

// FewShotConfusion is a (truth, predicted) pair and how often it happened.
type FewShotConfusion struct {
	Truth, Predicted string
	Count            int
}

// FewShotConfusions lists the wrong nearest-person predictions among known
// probes, and the people strangers were accepted as (Truth ""), most
// frequent first.
func FewShotConfusions(known, unknown []FewShotProbe) []FewShotConfusion {
	counts := map[[2]string]int{}
	for _, p := range known {
		if p.Predicted != p.Truth {
			pred := p.Predicted
			if pred == "" {
				pred = "(no face)"
			}
			counts[[2]string{p.Truth, pred}]++
		}
	}
	for _, p := range unknown {
		if p.Accepted {
			counts[[2]string{"", p.Predicted}]++
		}
	}
	out := make([]FewShotConfusion, 0, len(counts))
	for k, c := range counts {
		out = append(out, FewShotConfusion{Truth: k[0], Predicted: k[1], Count: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		if out[i].Truth != out[j].Truth {
			return out[i].Truth < out[j].Truth
		}
		return out[i].Predicted < out[j].Predicted
	})
	return out
}
