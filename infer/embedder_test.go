package infer

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/edged-dev/edged/face"
)

func newTestEmbedder(t testing.TB, opts Options) *Embedder {
	t.Helper()
	e, err := NewEmbedderWithWeights(weights(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// synthChip is a deterministic, face-independent test pattern.
func synthChip(seed int) face.Chip {
	pix := make([]uint8, face.ChipSize*face.ChipSize*3)
	for i := range pix {
		pix[i] = uint8((i*31 + seed*977 + (i/450)*seed) % 251)
	}
	return face.Chip{Pix: pix}
}

func maxAbsDiff(a, b face.Embedding) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func TestEmbedConcurrentCallersGetTheirOwnResults(t *testing.T) {
	e := newTestEmbedder(t, Options{MaxBatch: 8, BatchWait: 5 * time.Millisecond})
	const callers = 6
	chips := make([]face.Chip, callers*3)
	for i := range chips {
		chips[i] = synthChip(i)
	}
	want, err := e.Embed(chips) // one call, split into batches of 8
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(chips) {
		t.Fatalf("%d embeddings for %d chips", len(want), len(chips))
	}
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 3 {
				i := (c*3 + round) % len(chips)
				got, err := e.Embed(chips[i : i+1+round%2])
				if err != nil {
					errs <- err
					return
				}
				for k := range got {
					if d := maxAbsDiff(got[k], want[i+k]); d > 1e-5 {
						errs <- fmt.Errorf("caller %d chip %d: differs by %g from the batched result", c, i+k, d)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestEmbedFlipIsMeanOfChipAndMirror(t *testing.T) {
	e := newTestEmbedder(t, Options{})
	ef := newTestEmbedder(t, Options{Flip: true})
	c := synthChip(3)
	plain, err := e.Embed([]face.Chip{c, MirrorChip(c)})
	if err != nil {
		t.Fatal(err)
	}
	flip, err := ef.Embed([]face.Chip{c})
	if err != nil {
		t.Fatal(err)
	}
	mean := make(face.Embedding, EmbeddingSize)
	for k := range mean {
		mean[k] = (plain[0][k] + plain[1][k]) / 2
	}
	if d := maxAbsDiff(flip[0], mean); d > 1e-6 {
		t.Fatalf("flip embedding differs from the mean by %g", d)
	}
	if d := maxAbsDiff(plain[0], plain[1]); d < 1e-3 {
		t.Fatalf("mirror gave the same embedding (diff %g): mirroring did nothing", d)
	}
}

func TestMirrorChip(t *testing.T) {
	c := synthChip(1)
	m := MirrorChip(c)
	for _, p := range [][2]int{{0, 0}, {10, 149}, {75, 3}} {
		y, x := p[0], p[1]
		for ch := range 3 {
			if got, want := m.Pix[(y*150+149-x)*3+ch], c.Pix[(y*150+x)*3+ch]; got != want {
				t.Fatalf("mirror(%d,%d,%d) = %d, want %d", y, x, ch, got, want)
			}
		}
	}
	if mm := MirrorChip(m); string(mm.Pix) != string(c.Pix) {
		t.Fatal("mirroring twice is not the identity")
	}
}

func TestEmbedBadChips(t *testing.T) {
	e := newTestEmbedder(t, Options{})
	_, err := e.Embed([]face.Chip{synthChip(0), {Pix: make([]uint8, 100)}})
	if !errors.Is(err, face.ErrChipSize) {
		t.Fatalf("err = %v, want ErrChipSize", err)
	}
	if got := err.Error(); got[:6] != "chip 1" {
		t.Fatalf("error %q should name chip 1", got)
	}
	out, err := e.Embed(nil)
	if err != nil || out != nil {
		t.Fatalf("Embed(nil) = %v, %v", out, err)
	}
}

func TestEmbedderClose(t *testing.T) {
	e, err := NewEmbedderWithWeights(weights(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Requests in flight when Close starts still complete.
	done := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := e.Embed([]face.Chip{synthChip(i)})
			done <- err
		}()
	}
	time.Sleep(time.Millisecond)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
			t.Fatalf("in-flight Embed: %v", err)
		}
	}
	if err := e.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	if _, err := e.Embed([]face.Chip{synthChip(0)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Embed after Close = %v, want ErrClosed", err)
	}
}

func TestNewEmbedderBadModelDir(t *testing.T) {
	_, err := NewEmbedder(t.TempDir(), Options{})
	if !errors.Is(err, ErrModelFile) {
		t.Fatalf("err = %v, want ErrModelFile", err)
	}
}
