package finetune

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// run evaluates fetches with feeds in a fresh session on g.
func run(t testing.TB, g *tf.Graph, feeds map[tf.Output]*tf.Tensor, fetches ...tf.Output) []*tf.Tensor {
	t.Helper()
	sess, err := tf.NewSession(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.Run(feeds, fetches, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tensor(t testing.TB, v any) *tf.Tensor {
	t.Helper()
	x, err := tf.NewTensor(v)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func randMatrix(r *rand.Rand, rows, cols int) [][]float64 {
	m := make([][]float64, rows)
	for i := range m {
		m[i] = make([]float64, cols)
		for j := range m[i] {
			m[i][j] = r.NormFloat64()
		}
	}
	return m
}

func dist(a, b []float64, squared bool) float64 {
	var s float64
	for i := range a {
		s += (a[i] - b[i]) * (a[i] - b[i])
	}
	if squared {
		return s
	}
	return math.Sqrt(s)
}

func TestPairwiseDistances(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	x := randMatrix(r, 7, 5)
	for _, squared := range []bool{false, true} {
		s := op.NewScope()
		in := op.Placeholder(s.SubScope("x"), tf.Double)
		d := PairwiseDistances(s, in, squared)
		g, err := s.Finalize()
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, g, map[tf.Output]*tf.Tensor{in: tensor(t, x)}, d)[0].Value().([][]float64)
		for i := range x {
			for j := range x {
				if want := dist(x[i], x[j], squared); math.Abs(got[i][j]-want) > 1e-9 {
					t.Errorf("squared=%v d[%d][%d] = %v, want %v", squared, i, j, got[i][j], want)
				}
			}
		}
	}
}

func TestContrastiveHandComputed(t *testing.T) {
	// Pairs: same person at distance 5; different at 0.5 (inside margin 1);
	// different at 0.5 again; different at 2 (outside the margin).
	a := [][]float32{{0, 0}, {1, 0}, {0, 0}, {0, 0}}
	b := [][]float32{{3, 4}, {1, 0.5}, {0.3, 0.4}, {0, 2}}
	y := []float32{0, 1, 1, 1}
	// L = (0.5*25 + 0.5*0.25 + 0.5*0.25 + 0) / 4 = 12.75 / 4
	want := 12.75 / 4
	s := op.NewScope()
	pa := op.Placeholder(s.SubScope("a"), tf.Float)
	pb := op.Placeholder(s.SubScope("b"), tf.Float)
	py := op.Placeholder(s.SubScope("y"), tf.Float)
	loss, d := Contrastive(s, pa, pb, py, 1)
	g, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, g, map[tf.Output]*tf.Tensor{pa: tensor(t, a), pb: tensor(t, b), py: tensor(t, y)}, loss, d)
	if got := float64(out[0].Value().(float32)); math.Abs(got-want) > 1e-6 {
		t.Fatalf("loss %v, want %v", got, want)
	}
	wantD := []float32{5, 0.5, 0.5, 2}
	for i, v := range out[1].Value().([]float32) {
		if math.Abs(float64(v-wantD[i])) > 1e-6 {
			t.Errorf("D[%d] = %v, want %v", i, v, wantD[i])
		}
	}
}

// refTriplet is a brute-force Go reference of TripletLoss: it returns the
// loss and the selected triplets as "a,p,n" strings.
func refTriplet(x [][]float64, labels []int32, o TripletOptions) (float64, []string) {
	n := len(x)
	d := make([][]float64, n)
	for i := range d {
		d[i] = make([]float64, n)
		for j := range d[i] {
			d[i][j] = dist(x[i], x[j], o.Squared)
		}
	}
	isPos := func(a, p int) bool { return a != p && labels[a] == labels[p] }
	isNeg := func(a, k int) bool { return labels[a] != labels[k] }
	var sel []string
	var sum float64
	var count int
	key := func(a, p, k int) string { return fmt.Sprintf("%d,%d,%d", a, p, k) }
	switch o.Mining {
	case BatchAll:
		for a := 0; a < n; a++ {
			for p := 0; p < n; p++ {
				for k := 0; k < n; k++ {
					if isPos(a, p) && isNeg(a, k) {
						if l := d[a][p] - d[a][k] + o.Margin; l > 0 {
							sum += l
							count++
							sel = append(sel, key(a, p, k))
						}
					}
				}
			}
		}
	case BatchHard:
		for a := 0; a < n; a++ {
			hp, hn := -1, -1
			for k := 0; k < n; k++ {
				if isPos(a, k) && (hp < 0 || d[a][k] > d[a][hp]) {
					hp = k
				}
				if isNeg(a, k) && (hn < 0 || d[a][k] < d[a][hn]) {
					hn = k
				}
			}
			if hp < 0 || hn < 0 {
				continue
			}
			count++
			sum += math.Max(0, d[a][hp]-d[a][hn]+o.Margin)
			sel = append(sel, key(a, hp, hn))
		}
	case SemiHard:
		for a := 0; a < n; a++ {
			for p := 0; p < n; p++ {
				if !isPos(a, p) {
					continue
				}
				semi, far := -1, -1
				for k := 0; k < n; k++ {
					if !isNeg(a, k) {
						continue
					}
					if d[a][k] > d[a][p] && (semi < 0 || d[a][k] < d[a][semi]) {
						semi = k
					}
					if far < 0 || d[a][k] > d[a][far] {
						far = k
					}
				}
				if far < 0 {
					continue
				}
				k := semi
				if k < 0 {
					k = far
				}
				count++
				sum += math.Max(0, d[a][p]-d[a][k]+o.Margin)
				sel = append(sel, key(a, p, k))
			}
		}
	}
	sort.Strings(sel)
	return sum / math.Max(1, float64(count)), sel
}

// tripletGraph builds TripletLoss on float64 placeholders.
func tripletGraph(t testing.TB, o TripletOptions) (*tf.Graph, tf.Output, tf.Output, Triplet) {
	t.Helper()
	s := op.NewScope()
	x := op.Placeholder(s.SubScope("x"), tf.Double)
	l := op.Placeholder(s.SubScope("labels"), tf.Int32)
	tl, err := TripletLoss(s, x, l, o)
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	return g, x, l, tl
}

func selectedTriplets(sel [][][]float64) []string {
	var out []string
	for a := range sel {
		for p := range sel[a] {
			for k, v := range sel[a][p] {
				if v != 0 {
					out = append(out, fmt.Sprintf("%d,%d,%d", a, p, k))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestTripletHandComputed checks loss values and selections on a 1-d batch
// worked out by hand: points 0, 1 (person 0) and 3, 3.5 (person 1), plus a
// semi-hard fallback case.
func TestTripletHandComputed(t *testing.T) {
	x := [][]float64{{0}, {1}, {3}, {3.5}}
	labels := []int32{0, 0, 1, 1}
	// Distances: d01=1 d02=3 d03=3.5 d12=2 d13=2.5 d23=0.5; margin 2.
	cases := []struct {
		name   string
		x      [][]float64
		labels []int32
		o      TripletOptions
		loss   float64
		sel    []string
	}{
		// Positive-loss triplets: (1,0,2)=1, (1,0,3)=0.5, (2,3,1)=0.5 -> 2/3.
		{"batch-all", x, labels, TripletOptions{Margin: 2, Mining: BatchAll}, 2.0 / 3, []string{"1,0,2", "1,0,3", "2,3,1"}},
		// Anchor 0: p1 n2 -> 0; anchor 1: p0 n2 -> 1; anchor 2: p3 n1 -> 0.5; anchor 3: p2 n1 -> 0.
		{"batch-hard", x, labels, TripletOptions{Margin: 2, Mining: BatchHard}, 1.5 / 4, []string{"0,1,2", "1,0,2", "2,3,1", "3,2,1"}},
		// Squared: d01=1 d02=9 d03=12.25 d12=4 d13=6.25 d23=0.25; margin 5:
		// anchor 1: 1-4+5=2; anchor 2: 0.25-4+5=1.25; others 0 -> 3.25/4.
		{"batch-hard squared", x, labels, TripletOptions{Margin: 5, Squared: true, Mining: BatchHard}, 3.25 / 4, []string{"0,1,2", "1,0,2", "2,3,1", "3,2,1"}},
		// Pairs (0,1): n2 (3>1) -> 0; (1,0): n2 -> 1; (2,3): n1 -> 0.5; (3,2): n1 (2.5) -> 0.
		{"semi-hard", x, labels, TripletOptions{Margin: 2, Mining: SemiHard}, 1.5 / 4, []string{"0,1,2", "1,0,2", "2,3,1", "3,2,1"}},
		{"semi-hard fallback", [][]float64{{0}, {2}, {1.2}, {5}}, []int32{0, 0, 1, 1}, TripletOptions{Margin: 1, Mining: SemiHard},
			// Person 0 at 0 and 2, person 1 at 1.2 and 5; margin 1.
			// (0,1) d=2: negs 2 (1.2), 3 (5): farther than 2 -> 3 (5): 0.
			// (1,0) d=2: negs 2 (0.8), 3 (3): farther -> 3: 2-3+1 = 0.
			// (2,3) d=3.8: negs 0 (1.2), 1 (0.8): none farther -> farthest = 0: 3.8-1.2+1 = 3.6.
			// (3,2) d=3.8: negs 0 (5), 1 (3): farther -> 0 (5): 3.8-5+1 = -0.2 -> 0.
			3.6 / 4, []string{"0,1,3", "1,0,3", "2,3,0", "3,2,0"}},
	}
	for _, c := range cases {
		g, px, pl, tl := tripletGraph(t, c.o)
		out := run(t, g, map[tf.Output]*tf.Tensor{px: tensor(t, c.x), pl: tensor(t, c.labels)}, tl.Loss, tl.Selected)
		if got := out[0].Value().(float64); math.Abs(got-c.loss) > 1e-9 {
			t.Errorf("%s: loss %v, want %v", c.name, got, c.loss)
		}
		if got := selectedTriplets(out[1].Value().([][][]float64)); fmt.Sprint(got) != fmt.Sprint(c.sel) {
			t.Errorf("%s: selected %v, want %v", c.name, got, c.sel)
		}
		// The brute-force reference agrees with the hand computation.
		if l, sel := refTriplet(c.x, c.labels, c.o); math.Abs(l-c.loss) > 1e-9 || (c.o.Mining != BatchAll && fmt.Sprint(sel) != fmt.Sprint(c.sel)) {
			t.Errorf("%s: reference gives %v %v", c.name, l, sel)
		}
	}
}

// pkBatch returns a random P x K batch (rows grouped by person, people
// spread so that all three minings have work to do).
func pkBatch(r *rand.Rand, p, k, dim int) ([][]float64, []int32) {
	var x [][]float64
	var labels []int32
	for i := 0; i < p; i++ {
		centre := randMatrix(r, 1, dim)[0]
		for j := 0; j < k; j++ {
			v := make([]float64, dim)
			for d := range v {
				v[d] = 0.6*centre[d] + 0.5*r.NormFloat64()
			}
			x = append(x, v)
			labels = append(labels, int32(i))
		}
	}
	return x, labels
}

// TestTripletMatchesReference compares loss and selection with the
// brute-force reference on random P x K batches, for every mining and both
// distances.
func TestTripletMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, m := range []Mining{BatchAll, BatchHard, SemiHard} {
		for _, squared := range []bool{false, true} {
			o := TripletOptions{Margin: 0.5, Squared: squared, Mining: m}
			g, px, pl, tl := tripletGraph(t, o)
			for trial := 0; trial < 3; trial++ {
				x, labels := pkBatch(r, 4, 3, 6)
				out := run(t, g, map[tf.Output]*tf.Tensor{px: tensor(t, x), pl: tensor(t, labels)}, tl.Loss, tl.Selected, tl.Active)
				wantLoss, wantSel := refTriplet(x, labels, o)
				if got := out[0].Value().(float64); math.Abs(got-wantLoss) > 1e-9 {
					t.Errorf("%v squared=%v: loss %v, want %v", m, squared, got, wantLoss)
				}
				got := selectedTriplets(out[1].Value().([][][]float64))
				if fmt.Sprint(got) != fmt.Sprint(wantSel) {
					t.Errorf("%v squared=%v: selected %v\nwant %v", m, squared, got, wantSel)
				}
				if wantLoss > 0 && out[2].Value().(float64) == 0 {
					t.Errorf("%v: positive loss with no active triplet", m)
				}
			}
		}
	}
}

func TestTripletBadOptions(t *testing.T) {
	s := op.NewScope()
	x := op.Placeholder(s.SubScope("x"), tf.Float)
	l := op.Placeholder(s.SubScope("l"), tf.Int32)
	lf := op.Placeholder(s.SubScope("lf"), tf.Float)
	for _, c := range []struct {
		labels tf.Output
		o      TripletOptions
	}{
		{l, TripletOptions{Margin: 0}},
		{l, TripletOptions{Margin: 1, Mining: Mining(9)}},
		{lf, TripletOptions{Margin: 1}},
	} {
		if _, err := TripletLoss(s, x, c.labels, c.o); err == nil {
			t.Errorf("%+v: no error", c.o)
		}
	}
	if _, err := ParseMining("hardest"); err == nil {
		t.Error("ParseMining accepted an unknown name")
	}
	for _, n := range []string{"batch-all", "batch-hard", "semi-hard"} {
		if m, err := ParseMining(n); err != nil || m.String() != n {
			t.Errorf("ParseMining(%q) = %v, %v", n, m, err)
		}
	}
}

// checkGradient compares AddGradients with central finite differences of
// the scalar loss with respect to the placeholder x (float64).
func checkGradient(t *testing.T, name string, g *tf.Graph, loss, x tf.Output, feeds map[tf.Output]*tf.Tensor, x0 [][]float64) {
	t.Helper()
	grads, err := g.AddGradients("grad_"+name, []tf.Output{loss}, []tf.Output{x}, nil)
	if err != nil {
		t.Fatalf("%s: AddGradients: %v", name, err)
	}
	sess, err := tf.NewSession(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	eval := func(v [][]float64, fetch tf.Output) *tf.Tensor {
		f := map[tf.Output]*tf.Tensor{x: tensor(t, v)}
		for k, val := range feeds {
			f[k] = val
		}
		out, err := sess.Run(f, []tf.Output{fetch}, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out[0]
	}
	analytic := eval(x0, grads[0]).Value().([][]float64)
	var norm float64
	for _, row := range analytic {
		for _, v := range row {
			norm += v * v
		}
	}
	if norm == 0 {
		t.Fatalf("%s: the gradient is zero at the test point (the check would prove nothing)", name)
	}
	const h = 1e-6
	var worst float64
	for i := range x0 {
		for j := range x0[i] {
			v := make([][]float64, len(x0))
			for k := range x0 {
				v[k] = append([]float64(nil), x0[k]...)
			}
			v[i][j] = x0[i][j] + h
			up := eval(v, loss).Value().(float64)
			v[i][j] = x0[i][j] - h
			down := eval(v, loss).Value().(float64)
			numeric := (up - down) / (2 * h)
			diff := math.Abs(numeric - analytic[i][j])
			worst = math.Max(worst, diff)
			if diff > 1e-6*math.Max(1, math.Abs(numeric)) {
				t.Errorf("%s: d/dx[%d][%d] analytic %v, numeric %v", name, i, j, analytic[i][j], numeric)
			}
		}
	}
	t.Logf("%s: max |analytic - numeric| = %.2g", name, worst)
}

func TestContrastiveGradient(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	a0 := randMatrix(r, 6, 4)
	b0 := randMatrix(r, 6, 4)
	// Make two different-person pairs close, so the hinge is active for them.
	for j := range b0[1] {
		b0[1][j] = a0[1][j] + 0.2*r.NormFloat64()
		b0[4][j] = a0[4][j] + 0.3*r.NormFloat64()
	}
	y := []float64{0, 1, 0, 1, 1, 1}
	s := op.NewScope()
	pa := op.Placeholder(s.SubScope("a"), tf.Double)
	pb := op.Placeholder(s.SubScope("b"), tf.Double)
	py := op.Placeholder(s.SubScope("y"), tf.Double)
	loss, _ := Contrastive(s, pa, pb, py, 1.5)
	g, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	checkGradient(t, "contrastive_a", g, loss, pa, map[tf.Output]*tf.Tensor{pb: tensor(t, b0), py: tensor(t, y)}, a0)
}

func TestTripletGradient(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for _, m := range []Mining{BatchAll, BatchHard, SemiHard} {
		for _, squared := range []bool{false, true} {
			x0, labels := pkBatch(r, 3, 3, 4)
			margin := 0.8
			if squared {
				margin = 2
			}
			g, px, pl, tl := tripletGraph(t, TripletOptions{Margin: margin, Squared: squared, Mining: m})
			checkGradient(t, fmt.Sprintf("%v_squared_%v", m, squared), g, tl.Loss, px,
				map[tf.Output]*tf.Tensor{pl: tensor(t, labels)}, x0)
		}
	}
}
