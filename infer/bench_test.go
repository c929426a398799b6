package infer

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/edged-dev/edged/internal/procmem"

	"github.com/edged-dev/edged/face"
)

// BenchmarkEmbed measures one Embed call of 1, 8 and 32 chips: ms per face
// (wall and CPU), faces per second, the achieved GFLOP/s (from CountFLOPs)
// and the process's memory (peak RSS, and the current anonymous and
// file-backed parts).
//
//	go test -run '^$' -bench Embed -benchtime 20x ./infer
//	go test -run '^$' -bench 'Embed/mobilefacenet' -benchtime 20x ./infer
func BenchmarkEmbed(b *testing.B) {
	for _, id := range BackboneIDs() {
		b.Run(id, func(b *testing.B) { benchEmbed(b, id) })
	}
}

func benchEmbed(b *testing.B, id string) {
	bb, _ := Lookup(id)
	dir := modelDir(b)
	if id == BackboneMobileFaceNet {
		dir = mfnModelDir(b)
	}
	e, err := NewEmbedder(dir, Options{Backbone: id, MaxBatch: 32})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	for _, n := range []int{1, 8, 16, 32} {
		chips := make([]face.Chip, n)
		for i := range chips {
			chips[i] = resizeChip(synthChip(i), bb.InputSize)
		}
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			if _, err := e.Embed(chips); err != nil { // warm this batch size
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				if _, err := e.Embed(chips); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			perFace := b.Elapsed().Seconds() / float64(b.N*n)
			// CPU time is less sensitive than wall time to other load on
			// the machine: on an idle one, wall ~ CPU / threads.
			b.ReportMetric(cpu*1e3/float64(b.N*n), "cpu-ms/face")
			b.ReportMetric(perFace*1e3, "ms/face")
			b.ReportMetric(1/perFace, "faces/s")
			b.ReportMetric(float64(e.FLOPsPerFace())/perFace/1e9, "GFLOP/s")
			reportMemory(b)
		})
	}
}

// resizeChip crops a synthetic 150 chip to size (content does not matter
// for speed).
func resizeChip(c face.Chip, size int) face.Chip {
	if c.Side() == size {
		return c
	}
	pix := make([]uint8, 0, size*size*3)
	for y := range size {
		pix = append(pix, c.Pix[y*c.Side()*3:(y*c.Side()+size)*3]...)
	}
	return face.Chip{Size: size, Pix: pix}
}

// cpuTime is the process's user+system CPU time in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// reportMemory adds VmHWM (peak resident set, process-wide: run one
// sub-benchmark per process for a per-size peak), RssAnon and RssFile, in MB.
func reportMemory(b *testing.B) {
	m, err := procmem.Read()
	if err != nil {
		return
	}
	for name, v := range m.BenchMetrics() {
		b.ReportMetric(v, name)
	}
}
