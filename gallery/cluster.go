package gallery

import "sort"

// Cluster is one mode of a person's samples in the matching space.
type Cluster struct {
	// Centroid is the L2-normalised mean of the members (unit vectors).
	Centroid []float32
	// Spread is the largest distance of a member to the centroid.
	Spread float32
	// Count is the number of members; Samples their ids.
	Count   int
	Samples []string
	// Experience marks a cluster of the person's experience faces
	// (Person.Experience), not of their samples.
	Experience bool
}

// clusterUnits groups one person's unit vectors: members are taken best
// quality first; each joins the nearest cluster whose centroid is within
// radius, else starts a new one; then two rounds of reassignment to the
// nearest centroid settle the result (k-means with k fixed). A single
// cluster is the normalised mean of the samples, which on LFW identifies
// better than matching the nearest sample (a mean of shots averages out
// pose and light).
func clusterUnits(units [][]float32, ids []string, quality []float32, radius float64) []Cluster {
	if len(units) == 0 {
		return nil
	}
	order := make([]int, len(units))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return quality[order[a]] > quality[order[b]] })
	var cents [][]float32
	var members [][]int
	for _, i := range order {
		best, bd := -1, radius
		for c, cent := range cents {
			if d := dist(units[i], cent); d <= bd {
				best, bd = c, d
			}
		}
		if best < 0 {
			cents = append(cents, units[i])
			members = append(members, []int{i})
			continue
		}
		members[best] = append(members[best], i)
		cents[best] = meanOf(units, members[best])
	}
	for round := 0; round < 2 && len(cents) > 1; round++ {
		next := make([][]int, len(cents))
		for i, u := range units {
			best, bd := 0, dist(u, cents[0])
			for c := 1; c < len(cents); c++ {
				if d := dist(u, cents[c]); d < bd {
					best, bd = c, d
				}
			}
			next[best] = append(next[best], i)
		}
		cents, members = cents[:0], members[:0]
		for _, m := range next {
			if len(m) > 0 {
				cents = append(cents, meanOf(units, m))
				members = append(members, m)
			}
		}
	}
	out := make([]Cluster, len(cents))
	for c, m := range members {
		sort.Ints(m)
		cl := Cluster{Centroid: cents[c], Count: len(m)}
		for _, i := range m {
			if d := float32(dist(units[i], cents[c])); d > cl.Spread {
				cl.Spread = d
			}
			if ids != nil {
				cl.Samples = append(cl.Samples, ids[i])
			}
		}
		out[c] = cl
	}
	// Largest cluster first, so cluster 0 is the person's usual look.
	sort.SliceStable(out, func(a, b int) bool { return out[a].Count > out[b].Count })
	return out
}

func meanOf(units [][]float32, idx []int) []float32 {
	vs := make([][]float32, len(idx))
	for j, i := range idx {
		vs[j] = units[i]
	}
	return meanUnit(vs, nil)
}
