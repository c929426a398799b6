package head

import (
	"fmt"
	"math"
)

// Dim is the dimension of the backbone embedding and of the default head.
const Dim = 128

// MaxLayers bounds the depth of a head (the design uses one or two layers;
// the bound keeps a corrupt file from asking for absurd allocations).
const MaxLayers = 4

// MaxDim bounds the dimension accepted from a file or a caller.
const MaxDim = 4096

// Layer holds one square linear layer and, when another layer follows it,
// the PReLU slopes applied to its output.
type Layer struct {
	// W is the weight matrix, row-major [in][out]: y_j = sum_i x_i W[i*dim+j] + B[j].
	W []float32
	// B is the bias, one value per output.
	B []float32
	// Alpha holds the per-channel PReLU slopes (f(v) = v for v >= 0,
	// alpha*v otherwise). Required for every layer but the last, nil on the last.
	Alpha []float32
}

// Head is an immutable projection from raw backbone embeddings to the
// L2-normalised matching space. It is safe for concurrent use.
type Head struct {
	dim    int
	layers []Layer
}

// Identity returns the 128-d single-layer identity head: Project(raw) is
// raw/|raw|, exactly the frozen network's matching space.
func Identity() *Head {
	h, _ := New(Dim, 1)
	return h
}

// New returns an identity head of the given dimension and depth (every layer
// W = I, b = 0, every PReLU slope 1).
func New(dim, layers int) (*Head, error) {
	if dim < 1 || dim > MaxDim {
		return nil, fmt.Errorf("%w: dimension %d not in [1, %d]", ErrShape, dim, MaxDim)
	}
	if layers < 1 || layers > MaxLayers {
		return nil, fmt.Errorf("%w: %d layers not in [1, %d]", ErrShape, layers, MaxLayers)
	}
	ls := make([]Layer, layers)
	for l := range ls {
		w := make([]float32, dim*dim)
		for i := 0; i < dim; i++ {
			w[i*dim+i] = 1
		}
		ls[l] = Layer{W: w, B: make([]float32, dim)}
		if l < layers-1 {
			a := make([]float32, dim)
			for i := range a {
				a[i] = 1
			}
			ls[l].Alpha = a
		}
	}
	return &Head{dim: dim, layers: ls}, nil
}

// FromLayers builds a head from trained parameters (copied). Every layer must
// have dim*dim weights and dim biases; every layer but the last dim PReLU
// slopes and the last none. Non-finite values are rejected.
func FromLayers(dim int, layers []Layer) (*Head, error) {
	if dim < 1 || dim > MaxDim {
		return nil, fmt.Errorf("%w: dimension %d not in [1, %d]", ErrShape, dim, MaxDim)
	}
	if len(layers) < 1 || len(layers) > MaxLayers {
		return nil, fmt.Errorf("%w: %d layers not in [1, %d]", ErrShape, len(layers), MaxLayers)
	}
	ls := make([]Layer, len(layers))
	for l, in := range layers {
		if len(in.W) != dim*dim {
			return nil, fmt.Errorf("%w: layer %d has %d weights, want %d", ErrShape, l, len(in.W), dim*dim)
		}
		if len(in.B) != dim {
			return nil, fmt.Errorf("%w: layer %d has %d biases, want %d", ErrShape, l, len(in.B), dim)
		}
		last := l == len(layers)-1
		if last && in.Alpha != nil {
			return nil, fmt.Errorf("%w: the last layer has PReLU slopes", ErrShape)
		}
		if !last && len(in.Alpha) != dim {
			return nil, fmt.Errorf("%w: layer %d has %d PReLU slopes, want %d", ErrShape, l, len(in.Alpha), dim)
		}
		for _, vs := range [][]float32{in.W, in.B, in.Alpha} {
			if i := firstNonFinite(vs); i >= 0 {
				return nil, fmt.Errorf("%w: layer %d has a non-finite parameter (%v)", ErrShape, l, vs[i])
			}
		}
		ls[l] = Layer{W: clone(in.W), B: clone(in.B), Alpha: clone(in.Alpha)}
	}
	return &Head{dim: dim, layers: ls}, nil
}

// Dim returns the head's input and output dimension.
func (h *Head) Dim() int { return h.dim }

// NumLayers returns the number of linear layers.
func (h *Head) NumLayers() int { return len(h.layers) }

// Layers returns a copy of the head's parameters.
func (h *Head) Layers() []Layer {
	out := make([]Layer, len(h.layers))
	for i, l := range h.layers {
		out[i] = Layer{W: clone(l.W), B: clone(l.B), Alpha: clone(l.Alpha)}
	}
	return out
}

// IsIdentity reports whether the head computes exactly raw/|raw| (every
// layer W = I, b = 0, every slope 1).
func (h *Head) IsIdentity() bool {
	for _, l := range h.layers {
		for i := 0; i < h.dim; i++ {
			for j := 0; j < h.dim; j++ {
				want := float32(0)
				if i == j {
					want = 1
				}
				if l.W[i*h.dim+j] != want {
					return false
				}
			}
			if l.B[i] != 0 || (l.Alpha != nil && l.Alpha[i] != 1) {
				return false
			}
		}
	}
	return true
}

// Project maps a raw backbone embedding to the matching space (unit length).
// It implements the gallery's Projector interface. A vector of the wrong
// length yields nil (use ProjectChecked to get the error); a zero vector
// yields a zero vector (no NaN).
func (h *Head) Project(raw []float32) []float32 {
	out, err := h.ProjectChecked(raw)
	if err != nil {
		return nil
	}
	return out
}

// ProjectChecked is Project with an error for a wrong input length.
func (h *Head) ProjectChecked(raw []float32) ([]float32, error) {
	if len(raw) != h.dim {
		return nil, fmt.Errorf("%w: got %d values, want %d", ErrDim, len(raw), h.dim)
	}
	x := make([]float32, h.dim)
	copy(x, raw)
	if !normalize(x) {
		return x, nil // zeros: a zero (or non-finite) input carries no identity
	}
	y := make([]float32, h.dim)
	for _, l := range h.layers {
		copy(y, l.B)
		for i, xi := range x {
			if xi == 0 {
				continue
			}
			row := l.W[i*h.dim : (i+1)*h.dim]
			for j, w := range row {
				y[j] += xi * w
			}
		}
		if l.Alpha != nil {
			for j, v := range y {
				if v < 0 {
					y[j] = l.Alpha[j] * v
				}
			}
		}
		x, y = y, x
	}
	normalize(x)
	return x, nil
}

// normalize scales v to unit length in place (float64 accumulation); a zero
// or non-finite vector is set to zeros and normalize reports false.
func normalize(v []float32) bool {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsInf(ss, 0) || math.IsNaN(ss) {
		for i := range v {
			v[i] = 0
		}
		return false
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
	return true
}

func clone(v []float32) []float32 {
	if v == nil {
		return nil
	}
	return append([]float32(nil), v...)
}

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}
