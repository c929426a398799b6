package agent

// bench.go measures the daemon's chains on a video (edged bench).

import (
	"context"
	"fmt"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/internal/procmem"
	"github.com/edged-dev/edged/pipeline"
)

// BenchOptions configure Core.Bench.
type BenchOptions struct {
	Video   string
	Cameras int // cameras on the video at once (default 1)
	// Realtime paces the video to its frame rate like a camera (measures
	// drops) instead of going as fast as it goes.
	Realtime bool
}

// BenchResult is what Bench measured (edged bench --json).
type BenchResult struct {
	Video      string                `json:"video"`
	Width      int                   `json:"width"`
	Height     int                   `json:"height"`
	Cameras    int                   `json:"cameras"`
	Mode       string                `json:"mode"` // fast | realtime
	StartupS   float64               `json:"startup_s"`
	WallS      float64               `json:"wall_s"`
	Frames     uint64                `json:"frames"`  // processed, all cameras
	Dropped    uint64                `json:"dropped"` // replaced in the queue (realtime)
	FPS        float64               `json:"fps"`     // processed frames per second, all cameras
	FPSCamera  float64               `json:"fps_per_camera"`
	Faces      uint64                `json:"faces"`
	FacesPerS  float64               `json:"faces_per_s"`
	Embedded   uint64                `json:"embedded"`
	EmbeddedPS float64               `json:"embedded_per_s"`
	Stages     []pipeline.StageStats `json:"stages"` // merged over cameras
	RSSAnonMiB float64               `json:"rss_anon_mib"`
	RSSFileMiB float64               `json:"rss_file_mib"`
	PeakRSSMiB float64               `json:"peak_rss_mib"`
	Enrolled   int                   `json:"enrolled_people"`
}

// Bench runs o.Cameras chains (cam0, cam1, ...) on o.Video at once until
// the video ends, and reports per-stage latency, throughput and memory.
// StartupS is left to the caller. A cancelled ctx returns ctx's error.
func (c *Core) Bench(ctx context.Context, o BenchOptions) (BenchResult, error) {
	o.Cameras = max(o.Cameras, 1)
	cfg := c.cfg
	res := BenchResult{Video: o.Video, Cameras: o.Cameras, Mode: "fast", Enrolled: c.g.Info().People}
	if o.Realtime {
		res.Mode = "realtime"
	}
	var cams []pipeline.Camera
	var names []string
	var sizes []*frameSize
	for i := 0; i < o.Cameras; i++ {
		name := fmt.Sprintf("cam%d", i)
		cs := config.CameraSettings{Name: name, URL: o.Video, Threshold: cfg.Recognition.Threshold, MinFaceSize: cfg.Detect.MinFaceSize,
			ScoreThreshold: cfg.Detect.ScoreThreshold, MinQuality: cfg.Recognition.MinQuality}
		size := &frameSize{}
		cam, _, err := c.newCamera(cs, cameraMode{fast: !o.Realtime, mediaClock: !o.Realtime}, []pipeline.FrameOutput{size}, nil)
		if err != nil {
			return res, err
		}
		sizes = append(sizes, size)
		cams = append(cams, cam)
		names = append(names, name)
	}
	p := pipeline.New(pipeline.Options{Queue: cfg.Pipeline.FaceQueue, EventQueue: cfg.Pipeline.EventQueue, Logger: c.log, Metrics: c.reg})
	_ = p.Start()
	start := time.Now()
	var chains []*pipeline.Chain
	for _, cam := range cams {
		ch, err := p.AddCamera(ctx, cam)
		if err != nil {
			p.Close()
			return res, err
		}
		chains = append(chains, ch)
	}
	_ = p.Wait(ctx)
	wall := time.Since(start)
	var stats []pipeline.CameraStats
	for _, ch := range chains {
		stats = append(stats, ch.Stats())
	}
	p.Close()
	res.WallS = wall.Seconds()
	var stageSets [][]pipeline.StageStats
	for i, st := range stats {
		res.Frames += st.Processed
		res.Dropped += st.Dropped
		f, e, _ := c.recm.Totals(names[i])
		res.Faces += f
		res.Embedded += e
		stages := append([]pipeline.StageStats(nil), st.Stages...)
		stages = append(stages, c.recm.EmbedStats(names[i]), st.Latency)
		stageSets = append(stageSets, stages)
	}
	res.Stages = mergeStages(stageSets)
	if res.WallS > 0 {
		res.FPS = float64(res.Frames) / res.WallS
		res.FPSCamera = res.FPS / float64(o.Cameras)
		res.FacesPerS = float64(res.Faces) / res.WallS
		res.EmbeddedPS = float64(res.Embedded) / res.WallS
	}
	m, _ := procmem.Read()
	res.RSSAnonMiB, res.RSSFileMiB, res.PeakRSSMiB = m.AnonMiB, m.FileMiB, m.PeakMiB
	res.Width, res.Height = sizes[0].w, sizes[0].h
	return res, ctx.Err()
}

// frameSize records the frame size (for the report).
type frameSize struct{ w, h int }

func (f *frameSize) WriteFrame(fr *pipeline.Frame) error {
	f.w, f.h = fr.Width, fr.Height
	return nil
}

// mergeStages combines the same stage of several cameras (count-weighted
// mean; the percentiles of the busiest camera).
func mergeStages(sets [][]pipeline.StageStats) []pipeline.StageStats {
	if len(sets) == 0 {
		return nil
	}
	out := append([]pipeline.StageStats(nil), sets[0]...)
	for _, set := range sets[1:] {
		for i := range out {
			if i >= len(set) {
				break
			}
			a, b := out[i], set[i]
			n := a.Count + b.Count
			if n > 0 {
				a.Mean = (a.Mean*float64(a.Count) + b.Mean*float64(b.Count)) / float64(n)
			}
			a.P50, a.P95 = max(a.P50, b.P50), max(a.P95, b.P95)
			a.Count = n
			out[i] = a
		}
	}
	return out
}
