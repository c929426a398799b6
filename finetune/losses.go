package finetune

import (
	"fmt"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// The losses are plain graph code: each function adds ops to a scope and
// returns outputs, so they can be evaluated, differentiated
// (Graph.AddGradients) and tested on their own. They work in the dtype of
// their input (float32 for training, float64 in the gradient tests).
//
// Every op gets its own SubScope: the op wrappers name an op after its type,
// and two ops of one type in the same scope would collide.

// distEpsilon keeps the square root away from zero, where its derivative is
// infinite; below it a distance counts as 0 and passes no gradient.
const distEpsilon = 1e-12

// bigDistance masks entries out of an arg-min/arg-max; distances between
// L2-normalised (or any sane) embeddings are many orders smaller.
const bigDistance = 1e9

// constant returns v in dtype dt (float32 or float64).
func constant(s *op.Scope, v float64, dt tf.DataType) tf.Output {
	if dt == tf.Double {
		return op.Const(s, v)
	}
	return op.Const(s, float32(v))
}

func axis(s *op.Scope, a ...int32) tf.Output {
	if len(a) == 1 {
		return op.Const(s.SubScope("axis"), a[0])
	}
	return op.Const(s.SubScope("axes"), a)
}

// identity returns the [n,n] identity matrix in dtype dt, n = len(labels).
func identity(s *op.Scope, labels tf.Output, dt tf.DataType) tf.Output {
	n := op.Size(s.SubScope("n"), labels, op.SizeOutType(tf.Int32))
	idx := op.Range(s.SubScope("range"), op.Const(s.SubScope("zero"), int32(0)), n, op.Const(s.SubScope("one"), int32(1)))
	return op.OneHot(s.SubScope("eye"), idx, n, constant(s.SubScope("on"), 1, dt), constant(s.SubScope("off"), 0, dt))
}

// PairwiseDistances returns the [B,B] matrix of Euclidean distances between
// the rows of emb [B,D] (squared distances when squared is true). The
// diagonal is exactly 0 and passes no gradient; so does any distance below
// 1e-6 (the square root's derivative is unbounded at 0).
func PairwiseDistances(s *op.Scope, emb tf.Output, squared bool) tf.Output {
	s = s.SubScope("pairwise_distances")
	dt := emb.DataType()
	// |a-b|^2 = |a|^2 - 2 a·b + |b|^2 from the Gram matrix: O(B^2 D) work and
	// O(B^2) memory instead of the O(B^2 D) difference tensor.
	sq := op.Sum(s.SubScope("sq"), op.Square(s.SubScope("square"), emb), axis(s, 1), op.SumKeepDims(true)) // [B,1]
	gram := op.MatMul(s.SubScope("gram"), emb, emb, op.MatMulTransposeB(true))                             // [B,B]
	d2 := op.AddV2(s.SubScope("sum_sq"), sq, op.Transpose(s.SubScope("sq_t"), sq, op.Const(s.SubScope("perm"), []int32{1, 0})))
	d2 = op.Sub(s.SubScope("minus_gram"), d2, op.Mul(s.SubScope("two_gram"), constant(s.SubScope("two"), 2, dt), gram))
	// Rounding can leave tiny negatives; the diagonal is zero by definition.
	d2 = op.Maximum(s.SubScope("clamp"), d2, constant(s.SubScope("zero"), 0, dt))
	offDiag := op.Sub(s.SubScope("off_diag"), constant(s.SubScope("one"), 1, dt), identityLike(s, d2))
	d2 = op.Mul(s.SubScope("zero_diag"), d2, offDiag)
	if squared {
		return d2
	}
	d := op.Sqrt(s.SubScope("sqrt"), op.Maximum(s.SubScope("floor"), d2, constant(s.SubScope("eps"), distEpsilon, dt)))
	return op.Mul(s.SubScope("dist"), d, offDiag)
}

// identityLike returns the identity matrix with the shape of the square m.
func identityLike(s *op.Scope, m tf.Output) tf.Output {
	s = s.SubScope("identity")
	n := op.Gather(s.SubScope("n"), op.Shape(s.SubScope("shape"), m, op.ShapeOutType(tf.Int32)), op.Const(s.SubScope("i"), int32(0)))
	idx := op.Range(s.SubScope("range"), op.Const(s.SubScope("zero"), int32(0)), n, op.Const(s.SubScope("one"), int32(1)))
	dt := m.DataType()
	return op.OneHot(s.SubScope("eye"), idx, n, constant(s.SubScope("on"), 1, dt), constant(s.SubScope("off"), 0, dt))
}

// Contrastive is the contrastive loss of Hadsell, Chopra and LeCun (2006)
// over a batch of pairs (a[i], b[i]), a and b [N,D]:
//
//	L = mean_i (1-Y_i) D_i^2 / 2 + Y_i max(0, m - D_i)^2 / 2
//
// with D_i = |a_i - b_i| and y [N] (same dtype as a) holding Y = 0 for a pair
// of the same person and Y = 1 for different people. It returns the scalar
// loss and the distances D [N].
func Contrastive(s *op.Scope, a, b, y tf.Output, margin float64) (loss, dist tf.Output) {
	s = s.SubScope("contrastive")
	dt := a.DataType()
	diff := op.Sub(s.SubScope("diff"), a, b)
	d2 := op.Sum(s.SubScope("d2"), op.Square(s.SubScope("square"), diff), axis(s, 1))
	dist = op.Sqrt(s.SubScope("dist"), op.Maximum(s.SubScope("floor"), d2, constant(s.SubScope("eps"), distEpsilon, dt)))
	half := constant(s.SubScope("half"), 0.5, dt)
	one := constant(s.SubScope("one"), 1, dt)
	same := op.Mul(s.SubScope("same"), op.Sub(s.SubScope("1-y"), one, y), d2)
	hinge := op.Relu(s.SubScope("hinge"), op.Sub(s.SubScope("m-d"), constant(s.SubScope("margin"), margin, dt), dist))
	different := op.Mul(s.SubScope("different"), y, op.Square(s.SubScope("hinge_sq"), hinge))
	per := op.Mul(s.SubScope("per_pair"), half, op.AddV2(s.SubScope("terms"), same, different))
	return op.Mean(s.SubScope("loss"), per, axis(s, 0)), dist
}

// Mining selects the triplets of a P x K batch that enter the triplet loss.
type Mining int

const (
	// BatchAll uses every valid triplet (a, p, n) of the batch and averages
	// the loss over those with a positive loss (Hermans et al. 2017).
	BatchAll Mining = iota
	// BatchHard uses, per anchor, its farthest positive and nearest
	// negative (Hermans et al. 2017); the loss is the mean over anchors that
	// have both.
	BatchHard
	// SemiHard uses every anchor-positive pair with, as negative, the
	// nearest negative farther than the positive (FaceNet, Schroff et al.
	// 2015: d(a,p) < d(a,n), the loss is non-zero when it is also within the
	// margin). When an anchor has no negative farther than the positive,
	// the farthest of its negatives is used, as TensorFlow Addons'
	// triplet_semihard_loss does. The loss is the mean over the pairs.
	SemiHard
)

var miningNames = map[Mining]string{BatchAll: "batch-all", BatchHard: "batch-hard", SemiHard: "semi-hard"}

func (m Mining) String() string {
	if n, ok := miningNames[m]; ok {
		return n
	}
	return fmt.Sprintf("Mining(%d)", int(m))
}

// ParseMining parses "batch-all", "batch-hard" or "semi-hard".
func ParseMining(s string) (Mining, error) {
	for m, n := range miningNames {
		if strings.EqualFold(s, n) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%w: mining %q (want batch-all, batch-hard or semi-hard)", ErrOptions, s)
}

// TripletOptions configure TripletLoss.
type TripletOptions struct {
	// Margin is alpha in max(0, d(a,p) - d(a,n) + alpha). Must be > 0.
	Margin float64
	// Squared uses squared Euclidean distances (FaceNet) instead of plain ones.
	Squared bool
	// Mining picks the triplets.
	Mining Mining
}

// Triplet holds the outputs of TripletLoss.
type Triplet struct {
	// Loss is the scalar triplet loss.
	Loss tf.Output
	// Selected [B,B,B] (dtype of the embeddings) is 1 at (a,p,n) for every
	// triplet the mining put into the loss and 0 elsewhere: for batch-all the
	// valid triplets with a positive loss, for batch-hard one per anchor,
	// for semi-hard one per anchor-positive pair. Tests and diagnostics
	// fetch it; training does not evaluate it.
	Selected tf.Output
	// Active is the number of selected triplets with a positive loss (scalar).
	Active tf.Output
	// Distances is the [B,B] distance matrix the mining used.
	Distances tf.Output
}

// TripletLoss adds the triplet loss max(0, d(a,p) - d(a,n) + alpha) over the
// batch emb [B,D] with integer labels [B] (person per row), mining the
// triplets online as o.Mining says. Rows with the same label are positives,
// rows with another label negatives; an anchor is never its own positive.
func TripletLoss(s *op.Scope, emb, labels tf.Output, o TripletOptions) (Triplet, error) {
	if o.Margin <= 0 {
		return Triplet{}, fmt.Errorf("%w: triplet margin %v must be > 0", ErrOptions, o.Margin)
	}
	if _, ok := miningNames[o.Mining]; !ok {
		return Triplet{}, fmt.Errorf("%w: unknown mining %v", ErrOptions, o.Mining)
	}
	if dt := labels.DataType(); dt != tf.Int32 && dt != tf.Int64 {
		return Triplet{}, fmt.Errorf("%w: labels are %v, want int32 or int64", ErrOptions, dt)
	}
	s = s.SubScope("triplet_" + strings.ReplaceAll(o.Mining.String(), "-", "_"))
	dt := emb.DataType()
	c := func(name string, v float64) tf.Output { return constant(s.SubScope(name), v, dt) }
	one, zero := c("one", 1), c("zero", 0)
	margin := c("margin", o.Margin)

	dist := PairwiseDistances(s, emb, o.Squared)
	// Masks from the labels (no gradient flows through them).
	row := op.ExpandDims(s.SubScope("labels_row"), labels, axis(s, 1))
	col := op.ExpandDims(s.SubScope("labels_col"), labels, axis(s, 0))
	same := op.Cast(s.SubScope("same"), op.Equal(s.SubScope("eq"), row, col), dt)
	eye := identity(s, labels, dt)
	pos := op.Sub(s.SubScope("pos"), same, eye)                         // [B,B] p != a, same label
	neg := op.Sub(s.SubScope("neg"), one, same)                         // [B,B] different label
	hasNeg := op.Max(s.SubScope("has_neg"), neg, axis(s, 1))            // [B]
	hasPos := op.Max(s.SubScope("has_pos"), pos, axis(s, 1))            // [B]
	n := op.Size(s.SubScope("batch"), labels, op.SizeOutType(tf.Int32)) // B
	oneHot := func(name string, idx tf.Output) tf.Output {
		return op.OneHot(s.SubScope(name), idx, n, one, zero)
	}
	// masked adds bigDistance where mask is 0, so arg-min ignores those entries.
	big := c("big", bigDistance)
	masked := func(name string, d, mask tf.Output) tf.Output {
		return op.AddV2(s.SubScope(name), d, op.Mul(s.SubScope(name+"_pen"), big, op.Sub(s.SubScope(name+"_inv"), one, mask)))
	}
	// Mining decisions see the distances without gradient.
	dStop := op.StopGradient(s.SubScope("dist_stop"), dist)
	safeDiv := func(name string, num, den tf.Output) tf.Output {
		return op.RealDiv(s.SubScope(name), num, op.Maximum(s.SubScope(name+"_den"), den, one))
	}
	countPositive := func(name string, terms tf.Output) tf.Output {
		return op.Sum(s.SubScope(name), op.Cast(s.SubScope(name+"_gt0"),
			op.Greater(s.SubScope(name+"_cmp"), op.StopGradient(s.SubScope(name+"_stop"), terms), zero), dt),
			op.Range(s.SubScope(name+"_axes"), op.Const(s.SubScope(name+"_r0"), int32(0)),
				op.Rank(s.SubScope(name+"_rank"), terms), op.Const(s.SubScope(name+"_r1"), int32(1))))
	}
	all := func(name string, x tf.Output) tf.Output {
		return op.Sum(s.SubScope(name), x, op.Range(s.SubScope(name+"_axes"), op.Const(s.SubScope(name+"_r0"), int32(0)),
			op.Rank(s.SubScope(name+"_rank"), x), op.Const(s.SubScope(name+"_r1"), int32(1))))
	}

	var out Triplet
	out.Distances = dist
	switch o.Mining {
	case BatchAll:
		dap := op.ExpandDims(s.SubScope("d_ap"), dist, axis(s, 2)) // [B,B,1]: (a,p)
		dan := op.ExpandDims(s.SubScope("d_an"), dist, axis(s, 1)) // [B,1,B]: (a,n)
		terms := op.AddV2(s.SubScope("terms"), op.Sub(s.SubScope("ap-an"), dap, dan), margin)
		valid := op.Mul(s.SubScope("valid"),
			op.ExpandDims(s.SubScope("pos3"), pos, axis(s, 2)),
			op.ExpandDims(s.SubScope("neg3"), neg, axis(s, 1))) // [B,B,B]
		losses := op.Mul(s.SubScope("valid_losses"), op.Relu(s.SubScope("hinge"), terms), valid)
		active := countPositive("active", losses)
		out.Loss = safeDiv("loss", all("sum", losses), active)
		out.Active = active
		out.Selected = op.Cast(s.SubScope("selected"), op.Greater(s.SubScope("selected_cmp"),
			op.StopGradient(s.SubScope("losses_stop"), losses), zero), dt)

	case BatchHard:
		// Farthest positive: arg-max of d*pos - (1-pos) (non-positives at -1).
		pScore := op.Sub(s.SubScope("p_score"), op.Mul(s.SubScope("d_pos"), dStop, pos), op.Sub(s.SubScope("not_pos"), one, pos))
		pIdx := op.ArgMax(s.SubScope("hardest_pos"), pScore, axis(s, 1), op.ArgMaxOutputType(tf.Int32))
		nIdx := op.ArgMin(s.SubScope("hardest_neg"), masked("n_score", dStop, neg), axis(s, 1), op.ArgMinOutputType(tf.Int32))
		pOne, nOne := oneHot("pos_onehot", pIdx), oneHot("neg_onehot", nIdx)
		dap := op.Sum(s.SubScope("d_ap"), op.Mul(s.SubScope("d_ap_sel"), dist, pOne), axis(s, 1))
		dan := op.Sum(s.SubScope("d_an"), op.Mul(s.SubScope("d_an_sel"), dist, nOne), axis(s, 1))
		valid := op.Mul(s.SubScope("valid"), hasPos, hasNeg) // [B]
		losses := op.Mul(s.SubScope("valid_losses"),
			op.Relu(s.SubScope("hinge"), op.AddV2(s.SubScope("terms"), op.Sub(s.SubScope("ap-an"), dap, dan), margin)), valid)
		out.Loss = safeDiv("loss", all("sum", losses), all("anchors", valid))
		out.Active = countPositive("active", losses)
		sel := op.Mul(s.SubScope("sel_pn"),
			op.ExpandDims(s.SubScope("sel_p"), pOne, axis(s, 2)), op.ExpandDims(s.SubScope("sel_n"), nOne, axis(s, 1)))
		out.Selected = op.Mul(s.SubScope("selected"), sel,
			op.Reshape(s.SubScope("valid3"), valid, op.Const(s.SubScope("shape3"), []int32{-1, 1, 1})))

	case SemiHard:
		dap := op.ExpandDims(s.SubScope("d_ap"), dStop, axis(s, 2)) // [B,B,1]: (a,p)
		dan := op.ExpandDims(s.SubScope("d_an"), dStop, axis(s, 1)) // [B,1,B]: (a,n)
		neg3 := op.ExpandDims(s.SubScope("neg3"), neg, axis(s, 1))  // [B,1,B]
		farther := op.Cast(s.SubScope("farther"), op.Greater(s.SubScope("farther_cmp"), dan, dap), dt)
		cand := op.Mul(s.SubScope("candidates"), farther, neg3) // [B,B,B] negatives beyond the positive
		hasCand := op.Greater(s.SubScope("has_cand"), op.Max(s.SubScope("cand_any"), cand, axis(s, 2)), zero)
		danB := op.AddV2(s.SubScope("d_an_b"), dan, op.Mul(s.SubScope("zeros3"), zero, cand)) // broadcast to [B,B,B]
		semi := op.ArgMin(s.SubScope("semi_hard"), masked("semi_score", danB, cand), axis(s, 2), op.ArgMinOutputType(tf.Int32))
		// Fallback: the farthest negative (all are closer than the positive).
		fScore := op.Sub(s.SubScope("f_score"), op.Mul(s.SubScope("d_neg"), danB, neg3), op.Sub(s.SubScope("not_neg"), one, neg3))
		fall := op.ArgMax(s.SubScope("fallback"), fScore, axis(s, 2), op.ArgMaxOutputType(tf.Int32))
		nIdx := op.Select(s.SubScope("neg_idx"), hasCand, semi, fall) // [B,B]
		nOne := oneHot("neg_onehot", nIdx)                            // [B,B,B]
		danSel := op.Sum(s.SubScope("d_an_sel"), op.Mul(s.SubScope("d_an_pick"),
			op.ExpandDims(s.SubScope("dist_an"), dist, axis(s, 1)), nOne), axis(s, 2)) // [B,B]
		valid := op.Mul(s.SubScope("valid"), pos, op.ExpandDims(s.SubScope("has_neg_col"), hasNeg, axis(s, 1)))
		losses := op.Mul(s.SubScope("valid_losses"),
			op.Relu(s.SubScope("hinge"), op.AddV2(s.SubScope("terms"), op.Sub(s.SubScope("ap-an"), dist, danSel), margin)), valid)
		out.Loss = safeDiv("loss", all("sum", losses), all("pairs", valid))
		out.Active = countPositive("active", losses)
		out.Selected = op.Mul(s.SubScope("selected"), nOne, op.ExpandDims(s.SubScope("valid3"), valid, axis(s, 2)))
	}
	if err := s.Err(); err != nil {
		return Triplet{}, fmt.Errorf("build triplet loss: %w", err)
	}
	return out, nil
}
