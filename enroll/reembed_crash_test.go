package enroll

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/store"
)

// reembedCrashDirEnv makes the test binary a child that re-embeds the store
// in the directory (TestReembedCrashChild) until it is killed or done.
const reembedCrashDirEnv = "EDGED_REEMBED_CRASH_DIR"

// TestReembedCrashChild is the child process; it does nothing in a normal
// test run.
func TestReembedCrashChild(t *testing.T) {
	dir := os.Getenv(reembedCrashDirEnv)
	if dir == "" {
		t.Skip("child process of TestReembedSurvivesKill")
	}
	st, err := store.Open(store.Options{Dir: dir}) // fsync on every commit
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	emb := &targetEmbedder{onCall: func(int) { time.Sleep(2 * time.Millisecond) }}
	opts := ReembedOptions{Backbone: mfn, ChipFromCrop: cutChip, Embedder: emb, Batch: 8,
		// Reported only after the batch's commit returned.
		Progress: func(done, total int) { fmt.Fprintln(out, "staged", done, total); out.Flush() },
		// A slow switch in small transactions, to be killed in it too.
		switchOps:      16,
		afterSwitchTxn: func() error { time.Sleep(2 * time.Millisecond); return nil },
	}
	if _, err := Reembed(context.Background(), st, opts); err != nil {
		fmt.Fprintln(out, "error", err)
		out.Flush()
		os.Exit(1)
	}
	_ = st.Close()
	fmt.Fprintln(out, "done")
	out.Flush()
}

// TestReembedSurvivesKill kills a child process re-embedding a store,
// several times, at random moments (staging or switch), and checks after
// each kill that every stored vector is either its original dlib vector or
// its new MobileFaceNet one, that every batch the child reported staged
// survived, that neither backbone's gallery mixes, and finally that a
// resumed run completes the switch.
func TestReembedSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: spawns child processes")
	}
	dir := filepath.Join(t.TempDir(), "db")
	st := openStore(t, dir)
	const people, per = 8, 25
	keyOf := map[string]int{}      // sample id -> crop key
	orig := map[string][]float32{} // sample id -> dlib vector
	crop := cropOf(0)
	for p := 0; p < people; p++ {
		err := st.Update(func(tx *store.Tx) error {
			ps := store.Person{Name: "p" + strconv.Itoa(p)}
			if err := tx.PutPerson(&ps); err != nil {
				return err
			}
			for i := 0; i < per; i++ {
				k := p*per + i + 1
				crop.Pix[0], crop.Pix[1] = uint8(k>>8), uint8(k)
				var buf bytes.Buffer
				if err := png.Encode(&buf, crop.Image()); err != nil {
					return err
				}
				v := make([]float32, 128)
				v[0], v[1] = 1, float32(k)
				s := store.Sample{PersonID: ps.ID, Embedding: v, Backbone: dlib}
				if err := tx.AddSampleWith(&s, store.Images{Crop: buf.Bytes()}); err != nil {
					return err
				}
				keyOf[s.ID], orig[s.ID] = k, v
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(5, 6))
	total := people * per
	for run := 0; run < 4; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestReembedCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), reembedCrashDirEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it stage a random number of batches (the first runs) or all
		// of them (the later ones, to be killed in the switch), then kill
		// it a random moment later.
		want := 1 + rng.IntN(total/8/4)
		if run >= 2 {
			want = total
		}
		sc := bufio.NewScanner(stdout)
		reported, lines, done := 0, 0, false
		read := func(line string) {
			f := strings.Fields(line)
			switch {
			case len(f) == 3 && f[0] == "staged":
				reported, _ = strconv.Atoi(f[1])
				lines++
			case len(f) == 1 && f[0] == "done":
				done = true
			case len(f) == 1 && f[0] == "PASS":
				// The child test finished before the kill landed.
			default:
				t.Fatalf("child: %s", line)
			}
		}
		for lines < want && reported < total && !done && sc.Scan() {
			read(sc.Text())
		}
		time.Sleep(time.Duration(rng.IntN(30000)) * time.Microsecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		for sc.Scan() {
			read(sc.Text())
		}
		_ = cmd.Wait()
		st := openStore(t, dir)
		staged, switched := checkReembedState(t, st, keyOf, orig)
		if staged+switched < reported {
			t.Errorf("run %d: the child reported %d staged, the store has %d staged and %d switched", run, reported, staged, switched)
		}
		t.Logf("run %d: killed after %d reported (done %v): %d staged, %d switched", run, reported, done, staged, switched)
		_ = st.Close()
	}

	st = openStore(t, dir)
	defer st.Close()
	if _, err := Reembed(context.Background(), st, ReembedOptions{Backbone: mfn, ChipFromCrop: cutChip, Embedder: &targetEmbedder{t: t}}); err != nil {
		t.Fatal(err)
	}
	if staged, switched := checkReembedState(t, st, keyOf, orig); staged != 0 || switched != total {
		t.Fatalf("after the final run: %d staged, %d switched of %d", staged, switched, total)
	}
}

// checkReembedState checks the invariants of a store at any point of a
// re-embedding and returns how many items are staged (not yet switched)
// and switched.
func checkReembedState(t *testing.T, st *store.Store, keyOf map[string]int, orig map[string][]float32) (staged, switched int) {
	t.Helper()
	err := st.View(func(tx *store.Tx) error {
		n := 0
		if err := tx.EachSample(func(s store.Sample) error {
			n++
			switch {
			case s.Backbone == dlib && reflect.DeepEqual(s.Embedding, orig[s.ID]):
			case s.Backbone == mfn && reflect.DeepEqual(s.Embedding, targetVec(keyOf[s.ID])):
				switched++
			default:
				return fmt.Errorf("sample %s: backbone %q with %d values: neither its old nor its new vector", s.ID, s.Backbone, len(s.Embedding))
			}
			return nil
		}); err != nil {
			return err
		}
		if n != len(orig) {
			return fmt.Errorf("%d samples, want %d", n, len(orig))
		}
		return tx.EachStaged(func(v store.StagedVector) error {
			if v.Backbone != mfn || !reflect.DeepEqual(v.Embedding, targetVec(keyOf[v.ItemID])) {
				return fmt.Errorf("staged vector of %s is wrong", v.ItemID)
			}
			s, err := tx.Sample(v.PersonID, v.ItemID)
			if err != nil {
				return err
			}
			if s.Backbone != mfn {
				staged++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, bb := range []string{dlib, mfn} {
		if _, err := LoadGallery(st, gallery.New(gallery.Options{}), bb); err != nil {
			t.Fatalf("LoadGallery(%s) mid-way: %v", bb, err)
		}
	}
	return staged, switched
}
