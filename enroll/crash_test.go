package enroll

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/store"
)

// crashDirEnv makes the test binary a child that enrolls people in a loop
// (TestEnrollCrashChild) until it is killed.
const crashDirEnv = "EDGED_ENROLL_CRASH_DIR"

// samplesPerEnrollment is what every child enrollment stores: a person with
// this many samples, a clusters record and one outbox event.
const samplesPerEnrollment = 5

// TestEnrollCrashChild is the child process; it does nothing in a normal
// test run.
func TestEnrollCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestEnrollmentSurvivesKill")
	}
	st, err := store.Open(store.Options{Dir: dir}) // fsync on every commit
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	g := gallery.New(gallery.Options{})
	if _, err := LoadGallery(st, g, ""); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	events := func(r Result) []store.OutboxEvent {
		return []store.OutboxEvent{{Topic: "events/enrolled", Payload: []byte(r.PersonID)}}
	}
	en := New(st, g, nil, nil, Options{Events: events})
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 9))
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		faces := make([]Embedding, samplesPerEnrollment)
		for j := range faces {
			v := make([]float32, 128)
			for k := range v {
				v[k] = float32(rng.NormFloat64())
			}
			faces[j] = Embedding{Embedding: v, Quality: 0.9, Source: store.SourceTrack}
		}
		name := fmt.Sprintf("person-%d-%d", os.Getpid(), i)
		res, err := en.EnrollEmbeddings(context.Background(), name, "", faces)
		if err != nil {
			fmt.Fprintln(out, "error", err)
			out.Flush()
			os.Exit(1)
		}
		// Reported only after the commit returned: every reported person
		// must survive the kill.
		fmt.Fprintln(out, "committed", res.PersonID, name)
		out.Flush()
	}
}

// TestEnrollmentSurvivesKill kills a child process in the middle of a
// stream of enrollments, several times, and checks after each kill that
// the store opens, that every enrollment the child reported committed is
// complete, and that no enrollment is half there (a person without all
// samples, clusters or event).
func TestEnrollmentSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: spawns child processes")
	}
	dir := filepath.Join(t.TempDir(), "db")
	committed := map[string]string{} // id -> name, over every run
	rng := rand.New(rand.NewPCG(3, 4))
	for run := 0; run < 4; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEnrollCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it commit a random number of enrollments, then kill it at a
		// random moment after that (most likely inside the next one).
		want := 5 + rng.IntN(20)
		sc := bufio.NewScanner(stdout)
		n := 0
		for n < want && sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "committed" {
				t.Fatalf("child: %s", sc.Text())
			}
			committed[f[1]] = f[2]
			n++
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Lines written before the kill are commits too.
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "committed" {
				committed[f[1]] = f[2]
			}
		}
		_ = cmd.Wait()
		if n < want {
			t.Fatalf("run %d: child stopped after %d enrollments", run, n)
		}
		checkNoHalfEnrollment(t, dir, committed)
	}
}

func checkNoHalfEnrollment(t *testing.T, dir string, committed map[string]string) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatalf("store after kill: %v", err)
	}
	defer st.Close()
	people := map[string]bool{}
	err = st.View(func(tx *store.Tx) error {
		ps, err := tx.People()
		if err != nil {
			return err
		}
		for _, p := range ps {
			people[p.ID] = true
			n, err := tx.SampleCount(p.ID)
			if err != nil {
				return err
			}
			cl, err := tx.Clusters(p.ID)
			if err != nil {
				return err
			}
			if n != samplesPerEnrollment || len(cl.Clusters) == 0 {
				t.Errorf("half an enrollment: %s %q has %d samples, %d clusters", p.ID, p.Name, n, len(cl.Clusters))
			}
		}
		// No sample without its person.
		return tx.EachSample(func(s store.Sample) error {
			if !people[s.PersonID] {
				t.Errorf("orphan sample %s of %s", s.ID, s.PersonID)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, name := range committed {
		if !people[id] {
			t.Errorf("committed enrollment lost: %s %s", id, name)
		}
	}
	// Exactly one outbox event per stored person.
	evs, err := st.PendingEvents(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, ev := range evs {
		seen[string(ev.Payload)]++
	}
	for id := range people {
		if seen[id] != 1 {
			t.Errorf("person %s has %d enrolled events", id, seen[id])
		}
	}
	if len(evs) != len(people) {
		t.Errorf("%d events for %d people", len(evs), len(people))
	}
	t.Logf("after kill: %d people stored, %d reported committed", len(people), len(committed))
}
