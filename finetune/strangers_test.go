package finetune

import (
	"context"
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/store"
)

func TestBuildOpenPairs(t *testing.T) {
	// Samples 0-5: three people with two samples; 6-9: strangers.
	labels := []int{0, 0, 1, 1, 2, 2, 3, 4, 5, 6}
	stranger := []bool{false, false, false, false, false, false, true, true, true, true}
	hard := []Pair{{A: 6, B: 0, Y: 1}, {A: 6, B: 1, Y: 1}}
	tests := []struct {
		name                       string
		share                      float64
		wantPos, wantKnown, wantSt int
	}{
		{"half", 0.5, 3, 4, 5}, // 3 positives, 9 negatives: 4.5 rounds to 5 against strangers
		{"none", 0, 3, 9, 0},   // 12 enrolled negative pairs exist, 9 wanted
		{"all", 1, 3, 0, 9},    // 24 stranger pairs exist, 9 wanted
		{"quarter", 0.25, 3, 7, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pairs, err := BuildOpenPairs(labels, stranger, hard, tc.share, PairOptions{}, rand.New(rand.NewSource(1)))
			if err != nil {
				t.Fatal(err)
			}
			var pos, known, st, hardSeen int
			for _, p := range pairs {
				sa, sb := stranger[p.A], stranger[p.B]
				switch {
				case p.Y == 0:
					if sa || sb || labels[p.A] != labels[p.B] {
						t.Fatalf("positive pair %+v is not two samples of one enrolled person", p)
					}
					pos++
				case sa && sb:
					t.Fatalf("negative pair %+v of two strangers", p)
				case labels[p.A] == labels[p.B]:
					t.Fatalf("negative pair %+v of one person", p)
				case p == hard[0] || p == hard[1]:
					hardSeen++
				case sa || sb:
					st++
				default:
					known++
				}
			}
			if hardSeen != len(hard) {
				t.Fatalf("%d of %d hard pairs", hardSeen, len(hard))
			}
			// Sampled stranger pairs are (enrolled, stranger), hard ones
			// (stranger, enrolled): the counts are exact.
			if pos != tc.wantPos || known != tc.wantKnown || st != tc.wantSt {
				t.Fatalf("positives %d, enrolled negatives %d, stranger negatives %d; want %d, %d, %d",
					pos, known, st, tc.wantPos, tc.wantKnown, tc.wantSt)
			}
		})
	}
}

func TestBuildOpenPairsErrors(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	labels := []int{0, 0, 1, 1, 2}
	if _, err := BuildOpenPairs(labels, []bool{false}, nil, 0.5, PairOptions{}, r); err == nil {
		t.Fatal("mismatched stranger marks accepted")
	}
	if _, err := BuildOpenPairs(labels, make([]bool, 5), nil, 1.5, PairOptions{}, r); err == nil {
		t.Fatal("share 1.5 accepted")
	}
	if _, err := BuildOpenPairs(labels, make([]bool, 5), []Pair{{A: 0, B: 9}}, 0.5, PairOptions{}, r); err == nil {
		t.Fatal("hard pair outside the samples accepted")
	}
	// Strangers never make a positive pair: enrolled people with one sample
	// each and a stranger "person" of two samples have none.
	if _, err := BuildOpenPairs([]int{0, 1, 2, 2}, []bool{false, false, true, true}, nil, 0.5, PairOptions{}, r); err == nil {
		t.Fatal("no enrolled positive pair, yet pairs were built")
	}
}

func TestNewTrainingSetHardPairs(t *testing.T) {
	x := [][]float32{{1}, {2}, {3}, {4}}
	ts := newTrainingSet(x, []int{0, 0, 1, 1}, [][]float32{{5}, {6}}, []int{1}, []int{0})
	if len(ts.x) != 6 || !ts.stranger[4] || !ts.stranger[5] || ts.stranger[3] {
		t.Fatalf("training set %+v", ts)
	}
	if ts.labels[4] == ts.labels[5] || ts.labels[4] < 2 || ts.labels[5] < 2 {
		t.Fatalf("stranger labels %v: want distinct labels above the people's", ts.labels)
	}
	want := []Pair{{A: 5, B: 0, Y: 1}, {A: 5, B: 1, Y: 1}}
	if len(ts.hard) != 2 || ts.hard[0] != want[0] || ts.hard[1] != want[1] {
		t.Fatalf("hard pairs %v, want %v", ts.hard, want)
	}
}

// lookalikes returns strangers who share an enrolled person's identity
// dimensions and differ only along dimensions 16-19, where the enrolled
// people do not vary: what the frozen space cannot tell apart.
func lookalikes(r *rand.Rand, x [][]float32, n, faces int) [][][]float32 {
	var out [][][]float32
	for s := 0; s < n; s++ {
		src := r.Intn(len(x))
		var cl [][]float32
		for f := 0; f < faces; f++ {
			v := make([]float32, head.Dim)
			for d := range v {
				switch {
				case d < 16:
					v[d] = x[src][d] + float32(0.25*r.NormFloat64())
				case d < 20:
					v[d] = 0.9 + float32(0.1*r.NormFloat64())
				default:
					v[d] = float32(0.05 * r.NormFloat64())
				}
			}
			cl = append(cl, v)
		}
		out = append(out, cl)
	}
	return out
}

func addUnknowns(t *testing.T, st *store.Store, clusters [][][]float32) {
	t.Helper()
	err := st.Update(func(tx *store.Tx) error {
		for _, faces := range clusters {
			u, err := tx.NewUnknown()
			if err != nil {
				return err
			}
			u.Count = len(faces)
			u.Centroid = MeanTemplate(faces)
			for _, f := range faces {
				u.Samples = append(u.Samples, store.UnknownSample{Embedding: f, Quality: 0.9})
			}
			if err := tx.PutUnknown(u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// strangerMargin is the mean distance of the strangers to their nearest
// enrolled template in h's space, minus the mean distance of the enrolled
// samples to their own template: > 0 means strangers sit farther out.
func strangerMargin(h *head.Head, x [][]float32, labels []int, strangers [][][]float32) float64 {
	groups := map[int][][]float32{}
	for i, v := range x {
		groups[labels[i]] = append(groups[labels[i]], h.Project(v))
	}
	tpl := map[int][]float32{}
	for l, g := range groups {
		tpl[l] = MeanTemplate(g)
	}
	var own, far float64
	for i, v := range x {
		own += euclid(h.Project(v), tpl[labels[i]])
	}
	n := 0
	for _, cl := range strangers {
		for _, v := range cl {
			best := math.Inf(1)
			p := h.Project(v)
			for _, tv := range tpl {
				best = math.Min(best, euclid(p, tv))
			}
			far += best
			n++
		}
	}
	return far/float64(n) - own/float64(len(x))
}

// TestJobPushesLookalikeStrangersAway: strangers the cameras saw (unknown
// clusters) and "not X" feedback sit right next to enrolled people in the
// raw space. The job trains on them as negatives, the head learns the
// dimension that tells them apart, the guard (which holds out some of the
// clusters as strangers) activates it, and new look-alikes it never saw
// are kept out better than with the same job blind to them.
func TestJobPushesLookalikeStrangersAway(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	x, labels := synthPeople(r, 12, 5, 0.05)
	seen := lookalikes(r, x, 30, 2)
	fresh := lookalikes(r, x, 30, 2)

	st := newTestStore(t)
	fillStore(t, st, x, labels)
	addUnknowns(t, st, seen)
	// "not X": two more look-alikes of the first person, told apart by the user.
	var personID string
	if err := st.View(func(tx *store.Tx) error {
		return tx.EachSample(func(s store.Sample) error {
			if personID == "" && s.Embedding[0] == x[0][0] {
				personID = s.PersonID
			}
			return nil
		})
	}); err != nil || personID == "" {
		t.Fatalf("first person not found: %v", err)
	}
	notX := lookalikes(rand.New(rand.NewSource(9)), x[:1], 2, 1)
	if err := st.Update(func(tx *store.Tx) error {
		for _, cl := range notX {
			if err := tx.AddNegative(&store.Negative{PersonID: personID, Embedding: cl[0], Source: store.SourceTrack}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	frozen := strangerMargin(head.Identity(), x, labels, fresh)
	blindRes, err := NewJob(newStoreLike(t, x, labels), nil, quickJob(JobOptions{})).RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := NewJob(st, nil, quickJob(JobOptions{})).RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("with strangers: %s", res.Guard())
	if res.Unknowns != 30 || res.UnknownFaces != 60 || res.Negatives != 2 {
		t.Fatalf("job saw %d clusters, %d faces, %d negatives; want 30, 60, 2", res.Unknowns, res.UnknownFaces, res.Negatives)
	}
	blind := strangerMargin(blindRes.Head, x, labels, fresh)
	tuned := strangerMargin(res.Head, x, labels, fresh)
	t.Logf("margin of unseen look-alikes: frozen %.3f, blind job %.3f, job with strangers %.3f", frozen, blind, tuned)
	if tuned < frozen+0.2 || tuned < blind+0.2 {
		t.Fatalf("look-alikes not pushed away: margin %.3f (frozen %.3f, blind %.3f)", tuned, frozen, blind)
	}
	if !res.Activated {
		t.Fatalf("guard rejected the head that keeps look-alikes out: %s", res.Reason)
	}
	if res.Before.Strangers <= 12*5 {
		t.Fatalf("guard strangers %d: held-out unknown clusters are missing", res.Before.Strangers)
	}
}

// newStoreLike is a store with the same enrolled people and no strangers.
func newStoreLike(t *testing.T, x [][]float32, labels []int) *store.Store {
	st := newTestStore(t)
	fillStore(t, st, x, labels)
	return st
}

// TestJobIgnoresStrangersWhenAsked: IgnoreUnknowns and IgnoreNegatives
// leave them out.
func TestJobIgnoresStrangersWhenAsked(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	x, labels := synthPeople(r, 6, 4, 0.05)
	st := newTestStore(t)
	fillStore(t, st, x, labels)
	addUnknowns(t, st, lookalikes(r, x, 4, 2))
	res, err := NewJob(st, nil, quickJob(JobOptions{IgnoreUnknowns: true, IgnoreNegatives: true, Epochs: 2})).RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Unknowns != 0 || res.UnknownFaces != 0 || res.Negatives != 0 {
		t.Fatalf("ignored strangers were used: %+v", res)
	}
}

// TestExpiredUnknownsAreNotTrainedOn: unknown identities past their age
// bound (recognition.unknown_ttl) are left out of fine-tuning even before
// they are pruned from the store.
func TestExpiredUnknownsAreNotTrainedOn(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	add := func(seen time.Time) {
		if err := st.Update(func(tx *store.Tx) error {
			u, err := tx.NewUnknown()
			if err != nil {
				return err
			}
			u.Count, u.FirstSeen, u.LastSeen = 1, seen, seen
			u.Centroid = make([]float32, head.Dim)
			u.Centroid[0] = 1
			u.Samples = []store.UnknownSample{{Embedding: u.Centroid, Quality: 0.9}}
			return tx.PutUnknown(u)
		}); err != nil {
			t.Fatal(err)
		}
	}
	add(time.Now().Add(-time.Hour))
	add(time.Now().AddDate(0, -2, 0))
	j := &Job{st: st, opts: JobOptions{}.withDefaults()}
	p, err := j.loadPeople()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.unknowns) != 1 {
		t.Fatalf("%d unknown clusters trained on, want 1 (the expired one left out)", len(p.unknowns))
	}
}
