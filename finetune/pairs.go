package finetune

import (
	"fmt"
	"math/rand"
	"sort"
)

// Pair is one training pair for the contrastive loss: two sample indices and
// Y = 0 for the same person, 1 for different people.
type Pair struct {
	A, B int
	Y    float32
}

// PairOptions configure BuildPairs.
type PairOptions struct {
	// NegativesPerPositive is the ratio of different-person pairs to
	// same-person pairs. Default 3 (1:3): negatives are far more plentiful,
	// and a set dominated by either kind overfits it.
	NegativesPerPositive int
	// MaxPositives caps the same-person pairs (a random subset is kept);
	// 0 means all of them.
	MaxPositives int
}

func (o PairOptions) withDefaults() PairOptions {
	if o.NegativesPerPositive <= 0 {
		o.NegativesPerPositive = 3
	}
	return o
}

// BuildPairs returns every same-person pair of the samples (labels[i] is
// sample i's person), capped at MaxPositives, and NegativesPerPositive times
// as many distinct different-person pairs drawn uniformly, shuffled. The
// ratio is exact unless there are not enough distinct negative pairs, in
// which case all of them are used. It fails with ErrNotEnoughData when there
// is no positive pair or no negative pair.
func BuildPairs(labels []int, o PairOptions, r *rand.Rand) ([]Pair, error) {
	o = o.withDefaults()
	byPerson := map[int][]int{}
	for i, l := range labels {
		byPerson[l] = append(byPerson[l], i)
	}
	people := make([]int, 0, len(byPerson))
	for p := range byPerson {
		people = append(people, p)
	}
	sort.Ints(people) // map order must not leak into the result
	var pos []Pair
	for _, p := range people {
		idx := byPerson[p]
		for i := 0; i < len(idx); i++ {
			for j := i + 1; j < len(idx); j++ {
				pos = append(pos, Pair{A: idx[i], B: idx[j], Y: 0})
			}
		}
	}
	if len(pos) == 0 {
		return nil, fmt.Errorf("%w: no person has two samples (no same-person pair)", ErrNotEnoughData)
	}
	if len(people) < 2 {
		return nil, fmt.Errorf("%w: one person only (no different-person pair)", ErrNotEnoughData)
	}
	r.Shuffle(len(pos), func(i, j int) { pos[i], pos[j] = pos[j], pos[i] })
	if o.MaxPositives > 0 && len(pos) > o.MaxPositives {
		pos = pos[:o.MaxPositives]
	}
	// Count the distinct negative pairs: all pairs minus same-person pairs.
	n := len(labels)
	var samePairs int
	for _, idx := range byPerson {
		samePairs += len(idx) * (len(idx) - 1) / 2
	}
	totalNeg := n*(n-1)/2 - samePairs
	want := o.NegativesPerPositive * len(pos)
	var neg []Pair
	if want >= totalNeg {
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				if labels[i] != labels[j] {
					neg = append(neg, Pair{A: i, B: j, Y: 1})
				}
			}
		}
	} else {
		// Rejection sampling: want < totalNeg, and when want is close to
		// totalNeg the loop still ends (expected draws <= totalNeg*H(totalNeg)).
		seen := make(map[[2]int]bool, want)
		for len(neg) < want {
			i, j := r.Intn(n), r.Intn(n)
			if labels[i] == labels[j] {
				continue
			}
			if i > j {
				i, j = j, i
			}
			if seen[[2]int{i, j}] {
				continue
			}
			seen[[2]int{i, j}] = true
			neg = append(neg, Pair{A: i, B: j, Y: 1})
		}
	}
	all := append(pos, neg...)
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all, nil
}

// PKBatches splits the samples into triplet batches of p people with k
// samples each (people with fewer than k samples are drawn with
// replacement; people with a single sample are left out, they cannot be
// anchors). Every person with two samples or more appears in at least one
// batch per epoch. It returns the sample indices of each batch.
func PKBatches(labels []int, p, k int, r *rand.Rand) ([][]int, error) {
	if p < 2 || k < 2 {
		return nil, fmt.Errorf("%w: P x K batch needs P >= 2 and K >= 2 (got %d x %d)", ErrOptions, p, k)
	}
	byPerson := map[int][]int{}
	for i, l := range labels {
		byPerson[l] = append(byPerson[l], i)
	}
	var people []int
	for person, idx := range byPerson {
		if len(idx) >= 2 {
			people = append(people, person)
		}
	}
	if len(people) < 2 {
		return nil, fmt.Errorf("%w: %d people with two samples or more, a triplet batch needs 2", ErrNotEnoughData, len(people))
	}
	sort.Ints(people)
	if p > len(people) {
		p = len(people)
	}
	r.Shuffle(len(people), func(i, j int) { people[i], people[j] = people[j], people[i] })
	var batches [][]int
	for start := 0; start < len(people); start += p {
		group := people[start:min(start+p, len(people))]
		if len(group) < p { // top up the last batch with people already used
			for _, extra := range people[:start] {
				if len(group) == p {
					break
				}
				group = append(group[:len(group):len(group)], extra)
			}
		}
		var batch []int
		for _, person := range group {
			idx := append([]int(nil), byPerson[person]...)
			r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			for j := 0; j < k; j++ {
				if j < len(idx) {
					batch = append(batch, idx[j])
				} else {
					batch = append(batch, idx[r.Intn(len(idx))])
				}
			}
		}
		batches = append(batches, batch)
	}
	return batches, nil
}

// BuildOpenPairs builds the contrastive pairs of a training set that also
// holds strangers: faces of people nobody enrolled (the store's unknown-face
// clusters and "not X" feedback samples), which the head must keep away
// from the enrolled people. stranger[i] marks sample i as one; it only ever
// appears in negative pairs, and only against an enrolled sample (two
// strangers may be the same person split over two clusters).
//
// The positive pairs are BuildPairs's (enrolled people only). The
// NegativesPerPositive ratio holds for all negatives together:
// strangerShare of them pair an enrolled sample with a stranger, the rest
// two enrolled people (either part is all its distinct pairs when it has
// fewer). hard are negative pairs that must be trained on every epoch
// ("not X" samples against X's samples); they come on top of the ratio,
// since the user asked for them.
func BuildOpenPairs(labels []int, stranger []bool, hard []Pair, strangerShare float64, o PairOptions, r *rand.Rand) ([]Pair, error) {
	o = o.withDefaults()
	if len(stranger) != len(labels) {
		return nil, fmt.Errorf("%w: %d stranger marks for %d samples", ErrOptions, len(stranger), len(labels))
	}
	if strangerShare < 0 || strangerShare > 1 {
		return nil, fmt.Errorf("%w: stranger share %g outside [0,1]", ErrOptions, strangerShare)
	}
	var known, strangers []int
	for i, s := range stranger {
		if s {
			strangers = append(strangers, i)
		} else {
			known = append(known, i)
		}
	}
	if len(strangers) == 0 {
		strangerShare = 0
	}
	knownLabels := make([]int, len(known))
	for j, i := range known {
		knownLabels[j] = labels[i]
	}
	// Enrolled-only pairs with a ratio large enough for both parts; then
	// keep the positives and the wanted number of enrolled negatives.
	base, err := BuildPairs(knownLabels, o, r)
	if err != nil {
		return nil, err
	}
	var pos, negKnown []Pair
	for _, p := range base {
		p.A, p.B = known[p.A], known[p.B]
		if p.Y == 0 {
			pos = append(pos, p)
		} else {
			negKnown = append(negKnown, p)
		}
	}
	want := o.NegativesPerPositive * len(pos)
	wantStranger := int(strangerShare*float64(want) + 0.5)
	totalStranger := len(known) * len(strangers)
	wantStranger = min(wantStranger, totalStranger)
	if keep := want - wantStranger; keep < len(negKnown) {
		negKnown = negKnown[:keep]
	}
	out := append(pos, negKnown...)
	seen := make(map[[2]int]bool, wantStranger)
	if wantStranger == totalStranger {
		for _, k := range known {
			for _, s := range strangers {
				out = append(out, Pair{A: k, B: s, Y: 1})
			}
		}
	} else {
		for n := 0; n < wantStranger; {
			k, s := known[r.Intn(len(known))], strangers[r.Intn(len(strangers))]
			if seen[[2]int{k, s}] {
				continue
			}
			seen[[2]int{k, s}] = true
			out = append(out, Pair{A: k, B: s, Y: 1})
			n++
		}
	}
	return withHardPairs(out, hard, len(labels), r)
}

// PairBatches cuts pairs into contrastive batches of at most batchPairs
// pairs. Each batch carries only the rows of x its pairs use, once each, so a
// sample in several pairs of a batch is embedded once.
func PairBatches(pairs []Pair, x [][]float32, batchPairs int) []Batch {
	if batchPairs <= 0 {
		batchPairs = len(pairs)
	}
	var out []Batch
	for start := 0; start < len(pairs); start += batchPairs {
		rows := map[int]int32{}
		var b Batch
		row := func(i int) int32 {
			if k, ok := rows[i]; ok {
				return k
			}
			k := int32(len(rows))
			rows[i] = k
			b.X = append(b.X, x[i]...)
			return k
		}
		for _, p := range pairs[start:min(start+batchPairs, len(pairs))] {
			b.A, b.B, b.Y = append(b.A, row(p.A)), append(b.B, row(p.B)), append(b.Y, p.Y)
		}
		out = append(out, b)
	}
	return out
}

// withHardPairs appends the hard negative pairs (checked against n
// samples) to out and shuffles the whole set with r.
func withHardPairs(out, hard []Pair, n int, r *rand.Rand) ([]Pair, error) {
	for _, h := range hard {
		if h.A < 0 || h.A >= n || h.B < 0 || h.B >= n {
			return nil, fmt.Errorf("%w: hard pair (%d, %d) outside %d samples", ErrOptions, h.A, h.B, n)
		}
		out = append(out, Pair{A: h.A, B: h.B, Y: 1})
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}
