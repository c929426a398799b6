package gallery

import "math"

// dot returns the inner product of a and b (len(b) >= len(a)). Eight
// accumulators let the CPU overlap the multiply-adds (Go does not
// vectorise); this is the inner loop of every match.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+7 < len(a); i += 8 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
		s4 += a[i+4] * b[i+4]
		s5 += a[i+5] * b[i+5]
		s6 += a[i+6] * b[i+6]
		s7 += a[i+7] * b[i+7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// normalized returns v scaled to unit length (a copy), or nil when v is
// empty, all zero or not finite.
func normalized(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if len(v) == 0 || s == 0 || math.IsInf(s, 0) || math.IsNaN(s) {
		return nil
	}
	inv := 1 / math.Sqrt(s)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out
}

// distFromDot converts the inner product of two unit vectors to their
// Euclidean distance (0..2).
func distFromDot(d float32) float64 {
	x := 2 - 2*float64(d)
	if x <= 0 {
		return 0
	}
	return math.Sqrt(x)
}

// dist is the Euclidean distance between two vectors.
func dist(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

// meanUnit returns the normalised mean of unit vectors, weighted when
// weights is not nil.
func meanUnit(vs [][]float32, weights []float32) []float32 {
	if len(vs) == 0 {
		return nil
	}
	m := make([]float64, len(vs[0]))
	for j, v := range vs {
		w := float64(1)
		if weights != nil {
			w = float64(weights[j])
		}
		for i, x := range v {
			m[i] += w * float64(x)
		}
	}
	out := make([]float32, len(m))
	for i, x := range m {
		out[i] = float32(x)
	}
	if n := normalized(out); n != nil {
		return n
	}
	return vs[0]
}
