package finetune

import (
	"fmt"
	"math"
	"math/rand"
	"sort"

	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/store"
)

// Device experience in the job (see doc.go, "Experience"): in-domain faces
// of enrolled people that the device labelled itself (store.Experience,
// grouped by track), trained on across domains and measured on held-out
// tracks with the real gallery.

// expSample is one experience face of a person.
type expSample struct {
	vec   []float32
	track string // "camera/track"
}

// loadExperience adds the store's experience faces of the job's backbone
// to p (people without samples are left out: they are not in the gallery).
func (j *Job) loadExperience(p *people) error {
	index := map[string]int{}
	for i, id := range p.ids {
		index[id] = i
	}
	p.exp = make([][]expSample, len(p.ids))
	if j.opts.IgnoreExperience {
		return nil
	}
	return j.st.View(func(tx *store.Tx) error {
		return tx.EachExperience(func(x store.Experience) error {
			i, ok := index[x.PersonID]
			if ok && j.ours(x.Backbone, x.Embedding) {
				p.exp[i] = append(p.exp[i], expSample{vec: x.Embedding, track: x.Ref})
			}
			return nil
		})
	})
}

// splitTracks returns, for one person's experience, which faces are held
// out: whole tracks (frames of one track are never split between training
// and probes), Holdout of the tracks, at least one when the person has two
// tracks or more, never all of them.
func splitTracks(xs []expSample, holdout float64, r *rand.Rand) map[int]bool {
	var tracks []string
	seen := map[string]bool{}
	for _, x := range xs {
		if !seen[x.track] {
			seen[x.track] = true
			tracks = append(tracks, x.track)
		}
	}
	out := map[int]bool{}
	if len(tracks) < 2 {
		return out
	}
	sort.Strings(tracks)
	h := max(1, min(len(tracks)-1, int(holdout*float64(len(tracks))+0.5)))
	held := map[string]bool{}
	for _, k := range r.Perm(len(tracks))[:h] {
		held[tracks[k]] = true
	}
	for i, x := range xs {
		if held[x.track] {
			out[i] = true
		}
	}
	return out
}

// appendExperience adds experience faces to a training set: known samples
// (not strangers), marked as experience with their track.
func (ts *trainingSet) appendExperience(vecs [][]float32, labels []int, tracks []string) {
	if len(ts.track) < len(ts.x) {
		ts.track = append(ts.track, make([]int, len(ts.x)-len(ts.track))...)
		for i := range ts.track {
			ts.track[i] = -1
		}
	}
	ids := map[string]int{}
	for i, v := range vecs {
		id, ok := ids[tracks[i]]
		if !ok {
			id = len(ids)
			ids[tracks[i]] = id
		}
		ts.x = append(ts.x, v)
		ts.labels = append(ts.labels, labels[i])
		ts.stranger = append(ts.stranger, false)
		ts.track = append(ts.track, id)
	}
}

// hasExperience reports whether the set holds experience faces.
func (ts *trainingSet) hasExperience() bool {
	for _, t := range ts.track {
		if t >= 0 {
			return true
		}
	}
	return false
}

// BuildDomainPairs builds the contrastive pairs of a training set with
// device experience. track[i] is -1 for an enrollment sample, else the
// track of experience face i. Positives: every enrollment sample with
// every experience face of the same person (across domains: what the head
// must bring together), the frames of one track with each other, and the
// enrollment samples of one person with each other. Negatives,
// NegativesPerPositive times as many, drawn at random: strangerShare of
// them pair a known sample (either domain) with a stranger (unknown-face
// clusters: in-domain strangers), the others two different people (either
// domain); hard pairs come on top, as in BuildOpenPairs.
func BuildDomainPairs(labels, track []int, stranger []bool, hard []Pair, strangerShare float64, o PairOptions, r *rand.Rand) ([]Pair, error) {
	return buildDomainPairs(nil, labels, track, stranger, hard, strangerShare, o, r)
}

// nearStrangers is how many of a stranger's nearest known faces (raw
// space) are its hard negatives in buildDomainPairs.
const nearStrangers = 3

// buildDomainPairs is BuildDomainPairs; with x (the rows), half of the
// stranger negatives are hard: each stranger with its nearestStrangers
// nearest known faces, the people it would be taken for.
func buildDomainPairs(x [][]float32, labels, track []int, stranger []bool, hard []Pair, strangerShare float64, o PairOptions, r *rand.Rand) ([]Pair, error) {
	o = o.withDefaults()
	if len(track) != len(labels) || len(stranger) != len(labels) {
		return nil, fmt.Errorf("%w: %d labels, %d tracks, %d stranger marks", ErrOptions, len(labels), len(track), len(stranger))
	}
	byPerson := map[int][]int{}
	var known, strangers []int
	for i := range labels {
		if stranger[i] {
			strangers = append(strangers, i)
			continue
		}
		known = append(known, i)
		byPerson[labels[i]] = append(byPerson[labels[i]], i)
	}
	persons := make([]int, 0, len(byPerson))
	for p := range byPerson {
		persons = append(persons, p)
	}
	sort.Ints(persons)
	var pos []Pair
	for _, p := range persons {
		idx := byPerson[p]
		for a := 0; a < len(idx); a++ {
			for b := a + 1; b < len(idx); b++ {
				i, k := idx[a], idx[b]
				ti, tk := track[i], track[k]
				cross := (ti < 0) != (tk < 0)
				sameTrack := ti >= 0 && ti == tk
				bothEnrolled := ti < 0 && tk < 0
				if cross || sameTrack || bothEnrolled {
					pos = append(pos, Pair{A: i, B: k, Y: 0})
				}
			}
		}
	}
	if len(pos) == 0 {
		return nil, fmt.Errorf("%w: no same-person pair", ErrNotEnoughData)
	}
	if len(persons) < 2 {
		return nil, fmt.Errorf("%w: one person only (no different-person pair)", ErrNotEnoughData)
	}
	r.Shuffle(len(pos), func(i, j int) { pos[i], pos[j] = pos[j], pos[i] })
	if o.MaxPositives > 0 && len(pos) > o.MaxPositives {
		pos = pos[:o.MaxPositives]
	}
	if len(strangers) == 0 {
		strangerShare = 0
	}
	want := o.NegativesPerPositive * len(pos)
	wantStranger := int(strangerShare*float64(want) + 0.5)
	out := append([]Pair(nil), pos...)
	if x != nil && wantStranger > 0 {
		var near []Pair
		for _, s := range strangers {
			for _, k := range nearest(x, s, known, nearStrangers) {
				near = append(near, Pair{A: k, B: s, Y: 1})
			}
		}
		r.Shuffle(len(near), func(i, j int) { near[i], near[j] = near[j], near[i] })
		near = near[:min(len(near), wantStranger/2)]
		out = append(out, near...)
		wantStranger -= len(near)
	}
	for n := 0; n < wantStranger; n++ {
		out = append(out, Pair{A: known[r.Intn(len(known))], B: strangers[r.Intn(len(strangers))], Y: 1})
	}
	for n := wantStranger; n < want; {
		a, b := known[r.Intn(len(known))], known[r.Intn(len(known))]
		if labels[a] == labels[b] {
			continue
		}
		out = append(out, Pair{A: a, B: b, Y: 1})
		n++
	}
	return withHardPairs(out, hard, len(labels), r)
}

// scaledHead is a head with the distance scale measured for it
// (gallery.DistanceScaler): the guard's galleries calibrate with it as the
// daemon's will.
type scaledHead struct {
	*head.Head
	scale float64
}

func (s scaledHead) DistanceScale() float64 { return s.scale }

// distanceScale is the ratio of the low tail (the 1% quantile, where a
// threshold lives: a stranger is accepted by the person nearest to it)
// of the distances between different people's faces in h's space to that
// in the raw (normalised) space, on up to 20000 random pairs of x
// (labels: person; strangers count as their own people). A mean ratio
// was tried first: heads contract the tail more than the middle, and the
// galleries it calibrated let 10-20% of night strangers in. (The 0.2%
// quantile, and the 5% quantile of nearest-other-person distances, gave
// the same verdicts on half of the dev fold.)
func distanceScale(h *head.Head, x [][]float32, labels []int, r *rand.Rand) float64 {
	if h == nil || len(x) < 2 {
		return 1
	}
	proj := make([][]float32, len(x))
	raw := make([][]float32, len(x))
	for i, v := range x {
		raw[i], proj[i] = unit(v), unit(h.Project(v))
	}
	var dr, dp []float64
	for tries := 0; tries < 100000 && len(dr) < 20000; tries++ {
		a, b := r.Intn(len(x)), r.Intn(len(x))
		if labels[a] == labels[b] {
			continue
		}
		dr, dp = append(dr, euclid(raw[a], raw[b])), append(dp, euclid(proj[a], proj[b]))
	}
	if len(dr) < 100 {
		return 1
	}
	sort.Float64s(dr)
	sort.Float64s(dp)
	q := len(dr) / 100
	if dr[q] <= 0 {
		return 1
	}
	return dp[q] / dr[q]
}

func unit(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return v
	}
	inv := 1 / math.Sqrt(s)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out
}

// galleryMetrics measures a fold the way the daemon decides: a real
// gallery (the backbone's Space, the projector p, the enrollment training
// samples as samples and the training experience as experience clusters,
// its threshold fitted as the daemon's is) matches every held-out probe
// and stranger. It fills the open-set metrics of m (top-1, DIR at FAR 1%
// and 0.1% over the gallery's distances, open-set AUC and d'), and the
// operating point: DIR and FAR at the gallery's own threshold.
func (fd *fold) galleryMetrics(space gallery.Space, p gallery.Projector, m *Metrics) error {
	g := gallery.New(gallery.Options{Space: space})
	persons := make([]gallery.Person, fd.people)
	for i := range persons {
		persons[i].ID = fmt.Sprintf("p%05d", i)
	}
	for i, v := range fd.train {
		l := fd.trainLabels[i]
		persons[l].Samples = append(persons[l].Samples, gallery.Sample{ID: fmt.Sprintf("s%d", i), Embedding: v, Quality: 1})
	}
	for i, v := range fd.trainExp {
		l := fd.trainExpLabels[i]
		persons[l].Experience = append(persons[l].Experience, gallery.Sample{ID: fmt.Sprintf("x%d", i), Embedding: v, Quality: 1})
	}
	kept := persons[:0]
	for _, ps := range persons {
		if len(ps.Samples) > 0 {
			kept = append(kept, ps)
		}
	}
	if err := g.SetProjector(p); err != nil {
		return err
	}
	g.SetStrangers(fd.extra) // the strangers the fold trains on (not its probes)
	if err := g.Load(kept); err != nil {
		return err
	}
	var right, dirThr float64
	known := make([]float64, len(fd.held))
	for i, v := range fd.held {
		mt, err := g.Match(v)
		if err != nil {
			return err
		}
		known[i] = math.Inf(1)
		if mt.PersonID == fmt.Sprintf("p%05d", fd.heldLabels[i]) {
			right++
			if mt.Known {
				dirThr++
			}
			if mt.Known || mt.Reason == gallery.ReasonFar {
				known[i] = mt.Distance
			}
		}
	}
	var farThr float64
	strange := make([]float64, len(fd.strangers))
	for i, v := range fd.strangers {
		mt, err := g.Match(v)
		if err != nil {
			return err
		}
		strange[i] = math.Inf(1)
		if mt.Known || mt.Reason == gallery.ReasonFar {
			strange[i] = mt.Distance
		}
		if mt.Known {
			farThr++
		}
	}
	n, ns := float64(len(known)), float64(max(1, len(strange)))
	dir := func(far float64) float64 {
		t := thresholdAtFAR(strange, far)
		ok := 0.0
		for _, d := range known {
			if d < t {
				ok++
			}
		}
		return ok / n
	}
	m.Top1 = right / n
	m.DIRAtFAR1, m.DIRAtFAR01 = dir(0.01), dir(0.001)
	m.DIRAtThreshold, m.FARAtThreshold = dirThr/n, farThr/ns
	m.OpenSetAUC = auc(known, strange)
	m.OpenSetDPrime = dprime(known, strange)
	m.Threshold = g.Threshold()
	return nil
}

// nearest returns the k rows of cands nearest to row s of x (cosine).
func nearest(x [][]float32, s int, cands []int, k int) []int {
	type hit struct {
		i int
		d float64
	}
	us := unit(x[s])
	hits := make([]hit, 0, len(cands))
	for _, c := range cands {
		hits = append(hits, hit{c, euclid(us, unit(x[c]))})
	}
	sort.Slice(hits, func(a, b int) bool { return hits[a].d < hits[b].d })
	out := make([]int, 0, k)
	for _, h := range hits[:min(k, len(hits))] {
		out = append(out, h.i)
	}
	return out
}

// hasExperience reports whether anybody has experience faces.
func (p *people) hasExperience() bool {
	for _, xs := range p.exp {
		if len(xs) > 0 {
			return true
		}
	}
	return false
}
