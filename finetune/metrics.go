package finetune

import (
	"fmt"
	"math"
	"sort"
)

// Metrics are the guard's measurements on held-out samples, all fractions
// in [0,1]. The JSON keys follow `edged eval fewshot`.
type Metrics struct {
	// Top1 is closed-set identification: the nearest person is right.
	Top1 float64 `json:"top1"`
	// DIRAtFAR1 and DIRAtFAR01 are open-set detection-and-identification
	// rates (right person AND accepted) at the distance threshold where 1% /
	// 0.1% of stranger probes are accepted as somebody.
	DIRAtFAR1  float64 `json:"dir_at_far_0.01"`
	DIRAtFAR01 float64 `json:"dir_at_far_0.001"`
	// TARAtFAR1 and TARAtFAR01 are 1:1 verification rates (probe vs its own
	// person's template accepted) at 1% / 0.1% impostor acceptance.
	TARAtFAR1  float64 `json:"tar_at_far_0.01"`
	TARAtFAR01 float64 `json:"tar_at_far_0.001"`
	// AUC is the area under the verification ROC (genuine vs impostor
	// distances), OpenSetAUC the probability that a known probe is
	// identified right AND nearer its template than a stranger is to any
	// template. Both are continuous, so they still move when the rates
	// above are saturated or too coarse on few probes.
	AUC        float64 `json:"auc"`
	OpenSetAUC float64 `json:"open_set_auc"`
	// OpenSetDPrime is the separation of the known probes' distances (to
	// their own, rightly identified template) from the strangers' (to the
	// nearest template): (mean_s - mean_k) / sqrt((var_s + var_k) / 2).
	// It keeps measuring when every probe is already separated, which is
	// when the low-FAR tail (that few guard strangers cannot sample) moves.
	OpenSetDPrime float64 `json:"open_set_dprime"`
	// UnseenTARAtFAR1 and UnseenAUC measure 1:1 verification among the
	// strangers alone (pairs of samples of people never trained on): does
	// the head still generalise to new identities, or did it overfit the
	// enrolled ones? A head that overfits keeps the enrolled people apart
	// and lets look-alike strangers in at low FAR, a tail that few stranger
	// probes cannot sample directly; this pairwise check sees it.
	UnseenTARAtFAR1 float64 `json:"unseen_tar_at_far_0.01"`
	UnseenAUC       float64 `json:"unseen_auc"`
	// DIRAtThreshold and FARAtThreshold are the operating point the daemon
	// runs at: known probes accepted as the right person, and stranger
	// probes accepted as anyone, at the threshold the gallery fitted
	// itself (Threshold) in the measured space.
	DIRAtThreshold float64 `json:"dir_at_threshold"`
	FARAtThreshold float64 `json:"far_at_threshold"`
	Threshold      float64 `json:"threshold"`
	// Probes (known), Strangers (unknown probes) and Impostors (pairs)
	// count what the figures are based on.
	Probes    int `json:"probes"`
	Strangers int `json:"stranger_probes"`
	Impostors int `json:"impostor_pairs"`
}

// Map returns the metrics as the map stored with a head version.
func (m Metrics) Map() map[string]float64 {
	return map[string]float64{
		"top1": m.Top1, "dir_at_far_0.01": m.DIRAtFAR1, "dir_at_far_0.001": m.DIRAtFAR01,
		"tar_at_far_0.01": m.TARAtFAR1, "tar_at_far_0.001": m.TARAtFAR01, "auc": m.AUC, "open_set_auc": m.OpenSetAUC, "open_set_dprime": m.OpenSetDPrime,
		"unseen_tar_at_far_0.01": m.UnseenTARAtFAR1, "unseen_auc": m.UnseenAUC,
		"dir_at_threshold": m.DIRAtThreshold, "far_at_threshold": m.FARAtThreshold, "threshold": m.Threshold,
		"probes": float64(m.Probes), "stranger_probes": float64(m.Strangers), "impostor_pairs": float64(m.Impostors),
	}
}

// guardedMetrics are the metrics the guard compares, in report order:
// the open-set figures of the real gallery (DIR at FAR 1% and 0.1%,
// top-1, open-set AUC) and its operating point (DIR and FAR at its own
// fitted threshold: a head that lets in more strangers there is never
// activated, whatever else it gains). The held-out people are strangers
// in every one of them, so a head that only learnt the enrolled people
// fails them; the 1:1 figures (TAR, AUC, unseen people) are reported, not
// guarded: they are not what the gallery decides with (an unseen-AUC
// drop of 0.0003 rejected heads that let no more strangers in).
var guardedMetrics = []struct {
	name        string
	get         func(Metrics) float64
	lowerBetter bool
}{
	{"dir_at_far_0.01", func(m Metrics) float64 { return m.DIRAtFAR1 }, false},
	{"dir_at_far_0.001", func(m Metrics) float64 { return m.DIRAtFAR01 }, false},
	{"top1", func(m Metrics) float64 { return m.Top1 }, false},
	{"open_set_auc", func(m Metrics) float64 { return m.OpenSetAUC }, false},
	{"dir_at_threshold", func(m Metrics) float64 { return m.DIRAtThreshold }, false},
	{"far_at_threshold", func(m Metrics) float64 { return m.FARAtThreshold }, true},
}

// Decision is the guard's verdict on a candidate head.
type Decision struct {
	Activate bool
	// Reason says why, with the changes of every guarded metric, e.g.
	// "not worse on held-out data: dir_at_far_0.01 +0.0500, ...".
	Reason string
	// Gain is the change of each guarded metric (after - before).
	Gain map[string]float64
}

// Decide applies the guard's rule: activate only when no guarded metric is
// worse than before by more than tolerance, and at least one is better:
// a head whose gain the held-out data cannot show does not replace the
// model in force. (With device experience the held-out tracks are ones
// the device recognised with high confidence, so the old model often
// scores them perfectly already; on the LFW dev fold, heads that were
// merely "not worse" there lost up to 0.06 DIR at FAR 1% on the real
// night probes.)
func Decide(before, after Metrics, tolerance float64) Decision {
	d := Decision{Activate: true, Gain: map[string]float64{}}
	var worse, changes []string
	better := false
	for _, g := range guardedMetrics {
		delta := g.get(after) - g.get(before)
		d.Gain[g.name] = delta
		changes = append(changes, fmt.Sprintf("%s %+.4f", g.name, delta))
		if g.lowerBetter {
			delta = -delta
		}
		if delta < -tolerance {
			worse = append(worse, fmt.Sprintf("%s %.4f -> %.4f", g.name, g.get(before), g.get(after)))
		}
		if delta > 1e-9 {
			better = true
		}
	}
	switch {
	case len(worse) > 0:
		d.Activate = false
		d.Reason = "worse on held-out data: " + join(worse)
	case !better:
		d.Activate = false
		d.Reason = "no gain on held-out data (the old model already scores it as well): " + join(changes)
	default:
		d.Reason = "better and not worse on held-out data: " + join(changes)
	}
	return d
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// Evaluate measures verification and open-set identification against
// per-person templates, all vectors already in the matching space (unit
// length):
//
//   - templates[p] is enrolled person p's template (the normalised mean of
//     their enrolled samples, the gallery's single-cluster case);
//   - probes[i] is a held-out sample of person probeLabels[i] (a known probe);
//   - strangers are samples of people who are not enrolled at all (and
//     were not trained on): what the gallery must keep out; strangerLabels
//     says whose (for the unseen-people verification).
//
// Identification: the nearest template; a stranger's score is its distance
// to the nearest template. With n stranger scores the threshold for a false
// accept rate f lets floor(f*n) of them in. Verification pairs each probe
// with its own template (genuine) and every probe and stranger with every
// other template (impostors).
func Evaluate(templates [][]float32, probes [][]float32, probeLabels []int, strangers [][]float32, strangerLabels []int) (Metrics, error) {
	if len(templates) < 2 {
		return Metrics{}, fmt.Errorf("%w: %d templates, the guard needs 2 people or more", ErrNotEnoughData, len(templates))
	}
	if len(probes) == 0 || len(probes) != len(probeLabels) {
		return Metrics{}, fmt.Errorf("%w: %d probes, %d labels", ErrNotEnoughData, len(probes), len(probeLabels))
	}
	if len(strangers) == 0 || len(strangers) != len(strangerLabels) {
		return Metrics{}, fmt.Errorf("%w: %d stranger probes, %d labels", ErrNotEnoughData, len(strangers), len(strangerLabels))
	}
	var m Metrics
	m.Probes, m.Strangers = len(probes), len(strangers)
	knownScore := make([]float64, len(probes)) // distance when identified right, +Inf otherwise
	var genuine, impostor, strangerScore []float64
	for i, p := range probes {
		own := probeLabels[i]
		if own < 0 || own >= len(templates) {
			return Metrics{}, fmt.Errorf("%w: probe %d has person %d of %d", ErrOptions, i, own, len(templates))
		}
		best, bestD := -1, math.Inf(1)
		for t, tpl := range templates {
			d := euclid(p, tpl)
			if d < bestD {
				best, bestD = t, d
			}
			if t == own {
				genuine = append(genuine, d)
			} else {
				impostor = append(impostor, d)
			}
		}
		knownScore[i] = math.Inf(1)
		if best == own {
			m.Top1++
			knownScore[i] = bestD
		}
	}
	for _, s := range strangers {
		bestD := math.Inf(1)
		for _, tpl := range templates {
			d := euclid(s, tpl)
			impostor = append(impostor, d)
			bestD = math.Min(bestD, d)
		}
		strangerScore = append(strangerScore, bestD)
	}
	m.Top1 /= float64(len(probes))
	m.Impostors = len(impostor)
	dir := func(far float64) float64 {
		t := thresholdAtFAR(strangerScore, far)
		var ok float64
		for _, d := range knownScore {
			if d < t {
				ok++
			}
		}
		return ok / float64(len(knownScore))
	}
	tar := func(far float64) float64 {
		t := thresholdAtFAR(impostor, far)
		var ok float64
		for _, g := range genuine {
			if g < t {
				ok++
			}
		}
		return ok / float64(len(genuine))
	}
	m.DIRAtFAR1, m.DIRAtFAR01 = dir(0.01), dir(0.001)
	m.TARAtFAR1, m.TARAtFAR01 = tar(0.01), tar(0.001)
	m.OpenSetAUC = auc(knownScore, strangerScore)
	m.OpenSetDPrime = dprime(knownScore, strangerScore)
	var ug, ui []float64
	for i := range strangers {
		for j := i + 1; j < len(strangers); j++ {
			d := euclid(strangers[i], strangers[j])
			if strangerLabels[i] == strangerLabels[j] {
				ug = append(ug, d)
			} else {
				ui = append(ui, d)
			}
		}
	}
	if len(ug) > 0 && len(ui) > 0 {
		t := thresholdAtFAR(ui, 0.01)
		for _, g := range ug {
			if g < t {
				m.UnseenTARAtFAR1++
			}
		}
		m.UnseenTARAtFAR1 /= float64(len(ug))
		m.UnseenAUC = auc(ug, ui)
	}
	m.AUC = auc(genuine, impostor)
	return m, nil
}

// thresholdAtFAR returns the distance below which (strictly) at most
// floor(far*n) of the n negative scores fall.
func thresholdAtFAR(neg []float64, far float64) float64 {
	s := append([]float64(nil), neg...)
	sort.Float64s(s)
	k := int(math.Floor(far * float64(len(s))))
	if k >= len(s) {
		return math.Inf(1)
	}
	return s[k]
}

// auc is the probability that a genuine distance is below an impostor one
// (ties count half; +Inf genuine distances lose to every finite impostor).
func auc(genuine, impostor []float64) float64 {
	if len(genuine) == 0 || len(impostor) == 0 {
		return 0
	}
	imp := append([]float64(nil), impostor...)
	sort.Float64s(imp)
	var sum float64
	for _, g := range genuine {
		lo := sort.SearchFloat64s(imp, g)                                   // impostors < g
		hi := sort.Search(len(imp), func(i int) bool { return imp[i] > g }) // impostors <= g
		sum += float64(len(imp)-hi) + 0.5*float64(hi-lo)
	}
	return sum / float64(len(genuine)*len(imp))
}

func euclid(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

// MeanTemplate returns the L2-normalised mean of unit vectors (a person's
// template in the guard's evaluation).
func MeanTemplate(vs [][]float32) []float32 {
	if len(vs) == 0 {
		return nil
	}
	acc := make([]float64, len(vs[0]))
	for _, v := range vs {
		for i, x := range v {
			acc[i] += float64(x)
		}
	}
	var ss float64
	for _, x := range acc {
		ss += x * x
	}
	out := make([]float32, len(acc))
	if ss == 0 {
		return out
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range acc {
		out[i] = float32(x * inv)
	}
	return out
}

// dprime is (mean(b) - mean(a)) / sqrt((var(a) + var(b)) / 2) over the finite
// values (a misidentified known probe is +Inf: it is left out of the
// distribution; Top1 and the DIRs count it).
func dprime(a, b []float64) float64 {
	ma, va := meanVar(a)
	mb, vb := meanVar(b)
	sd := math.Sqrt((va + vb) / 2)
	if sd == 0 || math.IsNaN(ma) || math.IsNaN(mb) {
		return 0
	}
	return (mb - ma) / sd
}

func meanVar(x []float64) (float64, float64) {
	var n, sum, sq float64
	for _, v := range x {
		if !math.IsInf(v, 0) {
			n++
			sum += v
			sq += v * v
		}
	}
	if n == 0 {
		return math.NaN(), 0
	}
	m := sum / n
	return m, math.Max(0, sq/n-m*m)
}
