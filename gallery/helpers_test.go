package gallery

import (
	"math"
	"math/rand/v2"
)

const testDim = 128

// unit returns a random unit vector.
func unit(rng *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return normalized(v)
}

// faceLike returns random unit vectors shaped like face embeddings: they
// share a common direction, so two of them are about 0.56 apart (the LFW
// impostor distance between normalised dlib embeddings) instead of sqrt(2).
type faceLike struct {
	common []float32
}

func newFaceLike(rng *rand.Rand, dim int) faceLike { return faceLike{unit(rng, dim)} }

func (f faceLike) next(rng *rand.Rand) []float32 {
	u := unit(rng, len(f.common))
	v := make([]float32, len(u))
	for i := range v {
		v[i] = 2.29*f.common[i] + u[i]
	}
	return normalized(v)
}

// near returns a unit vector at distance d (exactly) from the unit vector
// c, in a random direction.
func near(rng *rand.Rand, c []float32, d float64) []float32 {
	// Orthogonal direction.
	r := unit(rng, len(c))
	p := dot(r, c)
	o := make([]float32, len(c))
	for i := range o {
		o[i] = r[i] - p*c[i]
	}
	o = normalized(o)
	// Angle for a chord of length d: d = 2 sin(theta/2).
	theta := 2 * math.Asin(d/2)
	out := make([]float32, len(c))
	for i := range out {
		out[i] = float32(math.Cos(theta))*c[i] + float32(math.Sin(theta))*o[i]
	}
	return out
}

// between returns the unit vector halfway (on the sphere) between a and b.
func between(a, b []float32) []float32 {
	m := make([]float32, len(a))
	for i := range m {
		m[i] = a[i] + b[i]
	}
	return normalized(m)
}

// scaled returns v times s (raw embeddings are not unit length).
func scaled(v []float32, s float32) []float32 {
	out := make([]float32, len(v))
	for i := range v {
		out[i] = v[i] * s
	}
	return out
}

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed+1)) }

// person builds a person whose samples lie at distance spread around c.
func person(rng *rand.Rand, id string, c []float32, n int, spread float64) Person {
	p := Person{ID: id, Name: "name of " + id}
	for i := 0; i < n; i++ {
		v := c
		if spread > 0 {
			v = near(rng, c, spread)
		}
		p.Samples = append(p.Samples, Sample{ID: id + "-s" + string(rune('a'+i)), Embedding: scaled(v, 1.4), Quality: 0.8})
	}
	return p
}
