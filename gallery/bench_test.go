package gallery

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// benchGallery builds a gallery of n people with one sample each (the worst
// case for matching: every sample is its own cluster) and returns it with
// probes: faces of enrolled people (at a typical same-person distance) and
// strangers.
func benchGallery(b *testing.B, n int) (*Gallery, [][]float32) {
	b.Helper()
	rng := newRNG(uint64(n))
	fl := newFaceLike(rng, testDim)
	people := make([]Person, n)
	centres := make([][]float32, n)
	for i := range people {
		centres[i] = fl.next(rng)
		people[i] = Person{ID: fmt.Sprintf("p%07d", i), Samples: []Sample{{ID: "s", Embedding: centres[i], Quality: 0.8}}}
	}
	g := New(Options{})
	start := time.Now()
	if err := g.Load(people); err != nil {
		b.Fatal(err)
	}
	buildTime = time.Since(start)
	probes := make([][]float32, 64)
	for i := range probes {
		if i%2 == 0 {
			probes[i] = near(rng, centres[rng.IntN(n)], 0.3)
		} else {
			probes[i] = fl.next(rng)
		}
	}
	return g, probes
}

// buildTime is how long the last benchGallery took to Load.
var buildTime time.Duration

// BenchmarkMatch measures one Match (decision included) against galleries
// of 1k to 1M samples. Goal: <= 1 ms at 100k, <= 10 ms at 1M on 2 cores.
// Run the large sizes with -benchtime=200x (building 1M takes a while).
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("samples=%d", n), func(b *testing.B) {
			if testing.Short() && n > 100_000 {
				b.Skip("-short")
			}
			g, probes := benchGallery(b, n)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := g.Match(probes[i%len(probes)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buildTime.Milliseconds()), "build-ms")
		})
	}
}

// BenchmarkMemoryPerSample reports the heap held by a gallery per sample
// (raw + projected sample, centroid, index, binary code, bookkeeping).
func BenchmarkMemoryPerSample(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("samples=%d", n), func(b *testing.B) {
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				g, _ := benchGallery(b, n)
				runtime.GC()
				runtime.ReadMemStats(&after)
				// The raw embeddings (512 bytes each) are the caller's,
				// handed over by Load; they stay referenced by the gallery.
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "bytes/sample")
				runtime.KeepAlive(g)
			}
		})
	}
}

// BenchmarkTrackerUpdate: one frame with three faces, one of them embedded.
func BenchmarkTrackerUpdate(b *testing.B) {
	g, probes := benchGallery(b, 1000)
	tr := NewTracker(g, TrackerOptions{})
	t0 := time.Now()
	for i := 0; b.Loop(); i++ {
		dets := []Detection{
			{Box: rect(10+i%5, 10), Quality: 0.8, Embedding: probes[0]},
			{Box: rect(200, 10+i%5), Quality: 0.8},
			{Box: rect(400, 300), Quality: 0.8},
		}
		tr.Update(t0.Add(time.Duration(i)*40*time.Millisecond), dets)
	}
}

// BenchmarkAddStrangers1000: one new unknown track's faces (3) filed into a
// 1,000-person gallery, as the recognizer does for each new stranger.
func BenchmarkAddStrangers1000(b *testing.B) {
	g, probes := benchGallery(b, 1000)
	faces := [][]float32{probes[0], probes[1], probes[2]}
	for b.Loop() {
		g.AddStrangers(faces)
	}
}
