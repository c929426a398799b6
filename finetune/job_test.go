package finetune

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/store"
)

func newTestStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// fillStore enrolls synthetic people (see synthPeople) in st, one
// transaction per person (as enrollments are).
func fillStore(t testing.TB, st *store.Store, x [][]float32, labels []int) {
	t.Helper()
	ids := map[int]string{}
	for i := 0; i < len(x); {
		j := i
		for j < len(x) && labels[j] == labels[i] {
			j++
		}
		err := st.Update(func(tx *store.Tx) error {
			id, ok := ids[labels[i]]
			if !ok {
				p := store.Person{Name: fmt.Sprintf("person %04d", labels[i])}
				if err := tx.PutPerson(&p); err != nil {
					return err
				}
				id, ids[labels[i]] = p.ID, p.ID
			}
			for k := i; k < j; k++ {
				if err := tx.AddSample(&store.Sample{PersonID: id, Embedding: x[k], Source: store.SourceFile}, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		i = j
	}
}

// fakeGallery records the heads it was switched to.
type fakeGallery struct {
	mu    sync.Mutex
	heads []*head.Head
}

func (g *fakeGallery) SetHead(h *head.Head) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.heads = append(g.heads, h)
	return nil
}

func quickJob(o JobOptions) JobOptions {
	o.Seed = 7
	return o
}

// TestJobActivatesUsefulHead: on people whose raw distances are dominated
// by nuisance dimensions, the fine-tuned head is better on held-out
// samples; the guard activates it, stores it with metrics, and the gallery
// is switched to it.
func TestJobActivatesUsefulHead(t *testing.T) {
	st := newTestStore(t)
	x, labels := synthPeople(rand.New(rand.NewSource(11)), 40, 5, 0.6)
	fillStore(t, st, x, labels)
	g := &fakeGallery{}
	var phases []string
	job := NewJob(st, g, quickJob(JobOptions{OnProgress: func(p Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}}))
	res, err := job.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before %+v", res.Before)
	t.Logf("after  %+v", res.After)
	t.Logf("%s (%d steps, %v)", res.Guard(), res.Steps, res.Duration)
	if !res.Activated || res.HeadID == "" {
		t.Fatalf("useful head not activated: %s", res.Reason)
	}
	if res.Gain["dir_at_far_0.01"] < 0.1 {
		t.Fatalf("activated with a DIR gain of only %.3f (nuisance suppression should give more)", res.Gain["dir_at_far_0.01"])
	}
	// 3 folds; everyone is trained on in 2 of them with 1 of 5 samples held out.
	if res.People != 40 || res.Samples != 200 || res.Folds != 3 || res.HeldOut != 80 {
		t.Fatalf("split: %d people, %d samples, %d folds, %d held out; want 40, 200, 3, 80", res.People, res.Samples, res.Folds, res.HeldOut)
	}
	hv, err := st.ActiveHead()
	if err != nil || hv == nil || hv.ID != res.HeadID {
		t.Fatalf("active head %+v, %v; want %s", hv, err, res.HeadID)
	}
	if hv.Metrics["dir_at_far_0.01"] != res.After.DIRAtFAR1 || hv.Metrics["before_dir_at_far_0.01"] != res.Before.DIRAtFAR1 {
		t.Fatalf("stored metrics %v do not match the result", hv.Metrics)
	}
	stored, err := head.Unmarshal(hv.Weights)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.heads) != 1 || maxDiff(g.heads[0].Project(x[0]), stored.Project(x[0])) != 0 {
		t.Fatalf("gallery not switched to the stored head (%d switches)", len(g.heads))
	}
	// Three guard folds (train, evaluate), the final training, done.
	want := []string{PhaseLoad, PhaseTrain, PhaseEvaluate, PhaseTrain, PhaseEvaluate, PhaseTrain, PhaseEvaluate, PhaseTrain, PhaseDone}
	if fmt.Sprint(phases) != fmt.Sprint(want) {
		t.Fatalf("progress phases %v, want %v", phases, want)
	}
	// A second job starts from the new active head: its "before" is the
	// stored head's quality, so it must not regress from there either.
	res2, err := job.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second job: %s", res2.Guard())
}

// TestGuardRejectsShuffledLabels: a deliberately harmful update (person
// labels shuffled before training) must be rejected, and nothing stored or
// switched.
func TestGuardRejectsShuffledLabels(t *testing.T) {
	st := newTestStore(t)
	x, labels := synthPeople(rand.New(rand.NewSource(12)), 40, 5, 0.6)
	fillStore(t, st, x, labels)
	g := &fakeGallery{}
	job := NewJob(st, g, quickJob(JobOptions{}))
	job.shuffleLabels = true
	res, err := job.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before %+v", res.Before)
	t.Logf("after  %+v", res.After)
	t.Logf("%s", res.Guard())
	if res.Activated {
		t.Fatalf("harmful head activated: %s", res.Reason)
	}
	if hs, _ := st.Heads(); len(hs) != 0 {
		t.Fatalf("rejected head stored: %+v", hs)
	}
	if len(g.heads) != 0 {
		t.Fatal("gallery switched to a rejected head")
	}
}

func TestJobNotEnoughData(t *testing.T) {
	for _, c := range []struct {
		name      string
		people, k int
	}{
		{"one shot", 5, 1},
		{"two shots", 5, 2}, // one held out leaves one training sample each
		{"two people", 2, 6},
	} {
		st := newTestStore(t)
		x, labels := synthPeople(rand.New(rand.NewSource(1)), c.people, c.k, 0.3)
		fillStore(t, st, x, labels)
		res, err := NewJob(st, nil, quickJob(JobOptions{})).RunOnce(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !res.Skipped || res.Activated || res.Reason == "" {
			t.Fatalf("%s: result %+v, want skipped with a reason", c.name, res)
		}
		t.Logf("%s: %s", c.name, res.Guard())
	}
}

// TestJobCancelCommitsNothing cancels a job mid-training: it returns the
// context error and stores nothing.
func TestJobCancelCommitsNothing(t *testing.T) {
	st := newTestStore(t)
	x, labels := synthPeople(rand.New(rand.NewSource(13)), 30, 5, 1.0)
	fillStore(t, st, x, labels)
	ctx, cancel := context.WithCancel(context.Background())
	o := quickJob(JobOptions{OnProgress: func(p Progress) {
		if p.Phase == PhaseTrain && p.Step >= 20 {
			cancel()
		}
	}})
	o.Epochs = 1000
	o.MaxSteps = 100000
	res, err := NewJob(st, nil, o).RunOnce(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if res.Steps < 20 || res.Steps > 21 {
		t.Fatalf("stopped after %d steps, want soon after 20", res.Steps)
	}
	if hs, _ := st.Heads(); len(hs) != 0 {
		t.Fatalf("cancelled job stored a head: %+v", hs)
	}
}

// TestRunDebounces: several triggers in a row start one job; a trigger
// after it starts another.
func TestRunDebounces(t *testing.T) {
	st := newTestStore(t)
	x, labels := synthPeople(rand.New(rand.NewSource(14)), 6, 4, 0.5)
	fillStore(t, st, x, labels)
	results := make(chan Result, 10)
	o := quickJob(JobOptions{Debounce: 150 * time.Millisecond, OnResult: func(r Result) { results <- r }})
	o.Epochs = 2
	job := NewJob(st, nil, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- job.Run(ctx) }()
	for i := 0; i < 5; i++ {
		job.Trigger()
		time.Sleep(30 * time.Millisecond)
	}
	select {
	case <-results:
	case <-time.After(20 * time.Second):
		t.Fatal("no job ran after the triggers")
	}
	select {
	case r := <-results:
		t.Fatalf("a second job ran without a new trigger: %+v", r)
	case <-time.After(500 * time.Millisecond):
	}
	job.Trigger()
	select {
	case <-results:
	case <-time.After(20 * time.Second):
		t.Fatal("no job after a later trigger")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestRunNow: a job asked for with RunNow starts at once (no debounce),
// under the id RunNow returned and with its own options; while it runs
// another is refused with ErrBusy; without Run there is none.
func TestRunNow(t *testing.T) {
	st := newTestStore(t)
	x, labels := synthPeople(rand.New(rand.NewSource(15)), 6, 4, 0.5)
	fillStore(t, st, x, labels)
	started := make(chan string, 10)
	results := make(chan Result, 10)
	var mu sync.Mutex
	epochs := map[int]bool{}
	o := quickJob(JobOptions{Debounce: time.Hour,
		OnStart:  func(id string) { started <- id },
		OnResult: func(r Result) { results <- r },
		OnError: func(err error) {
			if !errors.Is(err, context.Canceled) { // the last one, at the end
				t.Errorf("job failed: %v", err)
			}
		},
		OnProgress: func(p Progress) {
			mu.Lock()
			epochs[p.Epochs] = true
			mu.Unlock()
		}})
	job := NewJob(st, nil, o)
	if _, err := job.RunNow(nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("RunNow without Run: %v, want ErrNotRunning", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- job.Run(ctx) }()
	var id string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var err error
		if id, err = job.RunNow(func(o *JobOptions) { o.Epochs = 2 }); err == nil {
			break
		} else if !errors.Is(err, ErrNotRunning) || time.Now().After(deadline) {
			t.Fatalf("RunNow: %v", err)
		}
	}
	job.Trigger() // served by the same job
	select {
	case got := <-started:
		if got != id {
			t.Fatalf("started job %q, RunNow said %q", got, id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the job RunNow asked for did not start")
	}
	if _, err := job.RunNow(nil); !errors.Is(err, ErrBusy) {
		t.Errorf("RunNow while a job runs: %v, want ErrBusy", err)
	}
	select {
	case r := <-results:
		if r.Skipped || r.Steps == 0 {
			t.Errorf("result %+v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no result")
	}
	mu.Lock()
	if !epochs[2] || epochs[DefaultEpochs] {
		t.Errorf("epochs reported %v, want the job's own 2", epochs)
	}
	mu.Unlock()
	// The next job takes the options of the Job again.
	id2, err := job.RunNow(nil)
	if err != nil || id2 == id {
		t.Fatalf("second RunNow: %q %v", id2, err)
	}
	if got := <-started; got != id2 {
		t.Errorf("started %q, want %q", got, id2)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
