package gallery

import (
	"math"
	"slices"
)

// Calibration is how the gallery turns distances into decisions: the
// fitted threshold and the two distance distributions behind the
// confidence.
//
// Why fit: the 1:1 verification threshold of the network (0.4365 between
// normalised vectors on LFW pairs) accepts most strangers in a 1:N search,
// because a stranger only needs to be near ONE of N people, and a mean of
// several shots sits nearer to every face. The distance of a stranger to
// the nearest person therefore shrinks with the gallery's size and the
// number of shots. The gallery estimates that distribution from its own
// content: every calibration sample is matched against everybody except
// its own person (leave-one-person-out), which is exactly a stranger's
// search in a gallery one person smaller. A normal fit of those distances,
// blended with a prior measured on LFW (used alone while the gallery is too
// small to say anything), gives the threshold at which TargetFAR of
// strangers would be accepted.
type Calibration struct {
	// Threshold is the distance limit in use (Options.Threshold when set).
	Threshold float64 `json:"threshold"`
	// Fitted is false when Options.Threshold fixed it.
	Fitted bool `json:"fitted"`
	// People is the number of people in the gallery, Points the number of
	// leave-one-person-out distances measured (0: prior only).
	People int `json:"people"`
	Points int `json:"points"`
	// Stranger: mean and standard deviation of a stranger's distance to
	// the nearest person; Genuine: of a person's face to their own nearest
	// cluster.
	StrangerMean float64 `json:"stranger_mean"`
	StrangerSD   float64 `json:"stranger_sd"`
	GenuineMean  float64 `json:"genuine_mean"`
	GenuineSD    float64 `json:"genuine_sd"`
}

// How the prior and the measurements mix.
const (
	// priorWeight is how many measured people (or points, for the
	// same-person distances) count as much as the prior.
	priorWeight = 20
	// minFitPeople: below this, leave-one-out distances (to N-1 people)
	// say too little about N and only the prior is used.
	minFitPeople = 3
)

// normQuantile is the standard normal quantile function.
func normQuantile(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }

// priorStrangerQuantile is the u-quantile of a stranger's distance to the
// nearest of n people under the prior: P(min <= d) = 1-(1-F(d))^n.
func priorStrangerQuantile(sp Space, u float64, n int, k float64) float64 {
	p := 1 - math.Pow(1-u, 1/float64(max(n, 1)))
	return sp.impostorMean(k) + sp.ImpostorSD*normQuantile(p)
}

// calibrate fits the calibration from leave-one-person-out stranger
// distances and same-person distances measured on the gallery. k is the
// mean number of samples per cluster.
func calibrate(opts Options, people int, k float64, stranger, genuine []float64) Calibration {
	return calibrateEntries(opts, people, people, k, stranger, genuine)
}

// calibrateEntries is calibrate for a gallery whose people have extra
// entries a stranger may come near (experience clusters): the prior takes
// the nearest of entries (people plus experience clusters), not of people.
func calibrateEntries(opts Options, people, entries int, k float64, stranger, genuine []float64) Calibration {
	c := Calibration{People: people, Points: len(stranger)}
	sp := opts.Space.orDefault()
	entries = max(entries, people)
	// Prior.
	med := priorStrangerQuantile(sp, 0.5, entries, k)
	c.StrangerMean = med
	c.StrangerSD = med - priorStrangerQuantile(sp, 0.15866, entries, k)
	c.GenuineMean, c.GenuineSD = sp.genuineMean(k), sp.genuineSD(k)
	priorT := priorStrangerQuantile(sp, opts.TargetFAR, entries, k)
	t := priorT
	if people >= minFitPeople && len(stranger) >= 2 {
		m, s := meanSD(stranger)
		// A threshold lives in the lower tail, and the nearest-person
		// distance is skewed towards it (a minimum over people): fit the
		// normal's sd to the lower tail when it is wider than the middle
		// says (MobileFaceNet's is; dlib's is not, so its figures stay).
		s = max(s, lowerTailSD(stranger, m))
		// The samples of one person are alike, so the evidence grows with
		// the number of people measured, not of samples.
		w := float64(min(people, len(stranger))) / float64(min(people, len(stranger))+priorWeight)
		c.StrangerMean = w*m + (1-w)*c.StrangerMean
		c.StrangerSD = w*s + (1-w)*c.StrangerSD
		t = w*(m+s*normQuantile(opts.TargetFAR)) + (1-w)*priorT
	}
	if len(genuine) >= 2 {
		m, s := meanSD(genuine)
		w := float64(len(genuine)) / float64(len(genuine)+priorWeight)
		c.GenuineMean = w*m + (1-w)*c.GenuineMean
		c.GenuineSD = w*s + (1-w)*c.GenuineSD
	}
	c.StrangerSD = max(c.StrangerSD, 0.01)
	c.GenuineSD = max(c.GenuineSD, 0.01)
	c.Threshold, c.Fitted = min(sp.MaxThreshold, max(sp.MinThreshold, t)), true
	if opts.Threshold > 0 {
		c.Threshold, c.Fitted = opts.Threshold, false
	}
	return c
}

// lowerTailSD is the sd of a normal law whose 16% quantile is that of x
// (the mean minus one sd), 0 with fewer than 10 points (too noisy).
func lowerTailSD(x []float64, mean float64) float64 {
	if len(x) < 10 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	return max(0, mean-s[int(0.1587*float64(len(s)))])
}

func meanSD(x []float64) (float64, float64) {
	var m float64
	for _, v := range x {
		m += v
	}
	m /= float64(len(x))
	var s float64
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return m, math.Sqrt(s / float64(len(x)-1))
}

// confidence is the probability that the best person is right, among three
// explanations of the face: it is the best person (genuine at d1), the
// second best (genuine at d2) or a stranger (at d1), with the calibrated
// normal densities and equal prior odds. The densities are held flat on the
// far side of their means, so confidence only falls as d1 grows.
func (c Calibration) confidence(d1, d2 float64) float64 {
	lg := func(d float64) float64 {
		d = max(d, c.GenuineMean)
		z := (d - c.GenuineMean) / c.GenuineSD
		return -0.5*z*z - math.Log(c.GenuineSD)
	}
	ls := func(d float64) float64 {
		d = min(d, c.StrangerMean)
		z := (d - c.StrangerMean) / c.StrangerSD
		return -0.5*z*z - math.Log(c.StrangerSD)
	}
	a, b, s := lg(d1), lg(d2), ls(d1)
	m := max(a, b, s)
	ea, eb, es := math.Exp(a-m), math.Exp(b-m), math.Exp(s-m)
	conf := ea / (ea + eb + es)
	if math.IsNaN(conf) {
		return 0
	}
	return min(1, max(0, conf))
}
