package gallery

import (
	"math/bits"
	"math/rand/v2"
	"sync"
)

// index is an immutable set of unit vectors, each owned by a person slot,
// searched for the nearest two distinct persons (and optionally the k
// nearest entries). Vectors sit in one flat []float32 so the scan streams
// through memory. Large indexes also keep a binary code per vector (signs of
// a fixed pseudo-random rotation): a search then ranks every entry by
// Hamming distance first (popcounts, ~30x cheaper than a dot product) and
// computes exact distances only for the best candidates.
type index struct {
	dim   int
	n     int
	vecs  []float32 // n*dim
	owner []int32   // person slot of each entry
	words int       // uint64 words per code; 0 = no codes (exact scan)
	codes []uint64  // n*words
	rot   *rotation
	// centre is subtracted before coding: face embeddings fill a narrow
	// cone (two strangers are ~0.56 apart, not sqrt(2)), and sign bits of
	// vectors that all point the same way hardly differ.
	centre []float32
}

// searchParams tune one search.
type searchParams struct {
	exclude    int32 // person slot to ignore (-1: none)
	k          int   // also return the k nearest entries (0: none)
	workers    int
	candidates int // exact distances computed for this many best codes
}

// hit is one entry found by a search.
type hit struct {
	dot   float32
	slot  int32
	entry int32
}

// result of a search: the nearest entry of the best and second-best person
// (slot -1 when absent) and the k nearest entries, best first.
type result struct {
	best, second hit
	knn          []hit
}

func newIndex(dim int, vecs []float32, owner []int32, codeBits int, rot *rotation) *index {
	ix := &index{dim: dim, n: len(owner), vecs: vecs, owner: owner}
	if codeBits > 0 && rot != nil && ix.n > 0 {
		ix.rot = rot
		ix.words = rot.bits / 64
		ix.codes = make([]uint64, ix.n*ix.words)
		sum := make([]float64, dim)
		for i := 0; i < ix.n; i++ {
			for j, x := range vecs[i*dim : (i+1)*dim] {
				sum[j] += float64(x)
			}
		}
		ix.centre = make([]float32, dim)
		for j := range sum {
			ix.centre[j] = float32(sum[j] / float64(ix.n))
		}
		buf := rot.newBuf()
		for i := 0; i < ix.n; i++ {
			ix.code(vecs[i*dim:(i+1)*dim], ix.codes[i*ix.words:(i+1)*ix.words], buf)
		}
	}
	return ix
}

// code writes the binary code of v (centred) into out.
func (ix *index) code(v []float32, out []uint64, buf []float32) {
	c := make([]float32, len(v))
	for j, x := range v {
		c[j] = x - ix.centre[j]
	}
	ix.rot.code(c, out, buf)
}

// acc accumulates the best two distinct persons and the k best entries.
type acc struct {
	best, second hit
	exclude      int32
	k            int
	knn          []hit // sorted, best first, len <= k
}

func newAcc(exclude int32, k int) acc {
	return acc{best: hit{dot: -2, slot: -1}, second: hit{dot: -2, slot: -1}, exclude: exclude, k: k}
}

func (a *acc) add(d float32, slot, entry int32) {
	if slot < 0 || slot == a.exclude {
		return
	}
	switch {
	case slot == a.best.slot:
		if d > a.best.dot {
			a.best = hit{d, slot, entry}
		}
	case d > a.best.dot:
		a.second = a.best
		a.best = hit{d, slot, entry}
	case slot == a.second.slot:
		if d > a.second.dot {
			a.second = hit{d, slot, entry}
		}
	case d > a.second.dot:
		a.second = hit{d, slot, entry}
	}
	if a.k > 0 && (len(a.knn) < a.k || d > a.knn[len(a.knn)-1].dot) {
		h := hit{d, slot, entry}
		if len(a.knn) < a.k {
			a.knn = append(a.knn, h)
		} else {
			a.knn[len(a.knn)-1] = h
		}
		for i := len(a.knn) - 1; i > 0 && a.knn[i].dot > a.knn[i-1].dot; i-- {
			a.knn[i], a.knn[i-1] = a.knn[i-1], a.knn[i]
		}
	}
}

func (a *acc) merge(b *acc) {
	for _, h := range []hit{b.best, b.second} {
		if h.slot >= 0 {
			a.add(h.dot, h.slot, h.entry)
		}
	}
	// knn entries of b not already counted through best/second.
	for _, h := range b.knn {
		if a.k > 0 && (len(a.knn) < a.k || h.dot > a.knn[len(a.knn)-1].dot) && !containsHit(a.knn, h) {
			if len(a.knn) < a.k {
				a.knn = append(a.knn, h)
			} else {
				a.knn[len(a.knn)-1] = h
			}
			for i := len(a.knn) - 1; i > 0 && a.knn[i].dot > a.knn[i-1].dot; i-- {
				a.knn[i], a.knn[i-1] = a.knn[i-1], a.knn[i]
			}
		}
	}
}

func containsHit(hs []hit, h hit) bool {
	for _, x := range hs {
		if x.entry == h.entry {
			return true
		}
	}
	return false
}

// parallelMin is the smallest number of entries worth a second goroutine.
const parallelMin = 4096

func (ix *index) search(q []float32, p searchParams) result {
	if ix == nil || ix.n == 0 {
		return result{best: hit{slot: -1}, second: hit{slot: -1}}
	}
	var a acc
	if ix.words > 0 && p.candidates > 0 && p.candidates < ix.n {
		a = ix.searchCoded(q, p)
	} else {
		a = ix.searchExact(q, p)
	}
	return result{best: a.best, second: a.second, knn: a.knn}
}

// split runs fn over [0,n) in up to `workers` contiguous chunks, in
// parallel, and returns the per-chunk accumulators.
func split(n, workers int, exclude int32, k int, fn func(w, lo, hi int, a *acc)) []acc {
	if workers < 1 || n < parallelMin {
		workers = 1
	}
	accs := make([]acc, workers)
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min(n, (w+1)*chunk)
		accs[w] = newAcc(exclude, k)
		if w == workers-1 {
			fn(w, lo, hi, &accs[w])
			break
		}
		wg.Add(1)
		go func(w int, a *acc) {
			defer wg.Done()
			fn(w, lo, hi, a)
		}(w, &accs[w])
	}
	wg.Wait()
	return accs
}

func (ix *index) searchExact(q []float32, p searchParams) acc {
	dim := ix.dim
	accs := split(ix.n, p.workers, p.exclude, p.k, func(_, lo, hi int, a *acc) {
		vecs, owner := ix.vecs, ix.owner
		for i := lo; i < hi; i++ {
			a.add(dot(q, vecs[i*dim:i*dim+dim]), owner[i], int32(i))
		}
	})
	for i := 1; i < len(accs); i++ {
		accs[0].merge(&accs[i])
	}
	return accs[0]
}

var hamPool = sync.Pool{New: func() any { return new([]uint16) }}

func (ix *index) searchCoded(q []float32, p searchParams) acc {
	words := ix.words
	qc := make([]uint64, words)
	ix.code(q, qc, ix.rot.newBuf())
	hp := hamPool.Get().(*[]uint16)
	defer hamPool.Put(hp)
	if cap(*hp) < ix.n {
		*hp = make([]uint16, ix.n)
	}
	ham := (*hp)[:ix.n]
	maxH := words * 64
	workers := p.workers
	if workers < 1 || ix.n < parallelMin {
		workers = 1
	}
	hists := make([][]int32, workers)
	// Pass 1: Hamming distances and their histogram.
	split(ix.n, workers, -1, 0, func(w, lo, hi int, _ *acc) {
		h := make([]int32, maxH+1)
		hists[w] = h
		codes, owner := ix.codes, ix.owner
		for i := lo; i < hi; i++ {
			if owner[i] < 0 || owner[i] == p.exclude {
				ham[i] = uint16(maxH + 1)
				continue
			}
			c := codes[i*words : i*words+words]
			d := 0
			for w, x := range qc {
				d += bits.OnesCount64(c[w] ^ x)
			}
			ham[i] = uint16(d)
			h[d]++
		}
	})
	// The cut-off: the smallest Hamming distance with at least
	// p.candidates entries at or below it.
	cut, total := maxH, 0
	for d := 0; d <= maxH; d++ {
		for _, h := range hists {
			if h != nil {
				total += int(h[d])
			}
		}
		if total >= p.candidates {
			cut = d
			break
		}
	}
	// Pass 2: exact distances for the candidates.
	accs := split(ix.n, workers, p.exclude, p.k, func(_, lo, hi int, a *acc) {
		vecs, owner, dim := ix.vecs, ix.owner, ix.dim
		for i := lo; i < hi; i++ {
			if int(ham[i]) <= cut {
				a.add(dot(q, vecs[i*dim:i*dim+dim]), owner[i], int32(i))
			}
		}
	})
	for i := 1; i < len(accs); i++ {
		accs[0].merge(&accs[i])
	}
	return accs[0]
}

// rotation is a fixed pseudo-random orthogonal transform (rounds of random
// sign flips and fast Walsh-Hadamard transforms, as in fast
// Johnson-Lindenstrauss transforms) whose output signs are the binary code:
// vectors at a small angle share most bits.
type rotation struct {
	dim, pad int
	signs    [][]float32 // per round, 2 sign vectors of length pad
	bits     int
}

func newRotation(dim, codeBits int, seed uint64) *rotation {
	pad := 64
	for pad < dim {
		pad *= 2
	}
	rounds := max(1, (codeBits+pad-1)/pad)
	r := &rotation{dim: dim, pad: pad, bits: rounds * pad}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i < 2*rounds; i++ {
		s := make([]float32, pad)
		for j := range s {
			s[j] = 1
			if rng.Uint64()&1 == 1 {
				s[j] = -1
			}
		}
		r.signs = append(r.signs, s)
	}
	return r
}

func (r *rotation) newBuf() []float32 { return make([]float32, r.pad) }

// code writes the sign bits of the rotated v into out (r.bits/64 words).
func (r *rotation) code(v []float32, out []uint64, buf []float32) {
	for i := range out {
		out[i] = 0
	}
	for round := 0; round < len(r.signs)/2; round++ {
		clear(buf)
		copy(buf, v)
		for _, s := range r.signs[2*round : 2*round+2] {
			for j := range buf {
				buf[j] *= s[j]
			}
			fwht(buf)
		}
		base := round * r.pad
		for j, x := range buf {
			if x > 0 {
				b := base + j
				out[b/64] |= 1 << (b % 64)
			}
		}
	}
}

// fwht is the in-place, unnormalised fast Walsh-Hadamard transform
// (len(a) a power of two).
func fwht(a []float32) {
	for h := 1; h < len(a); h *= 2 {
		for i := 0; i < len(a); i += 2 * h {
			for j := i; j < i+h; j++ {
				x, y := a[j], a[j+h]
				a[j], a[j+h] = x+y, x-y
			}
		}
	}
}
