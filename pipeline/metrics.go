package pipeline

import (
	"math"
	"sort"

	"github.com/edged-dev/edged/internal/metrics"
)

type pipelineMetrics struct {
	frames, skipped, dropped, processed *metrics.CounterVec
	stage, e2e                          *metrics.HistogramVec
	stageErrors                         *metrics.CounterVec
	events, eventsLost, outputErrors    *metrics.CounterVec
}

func newPipelineMetrics(r *metrics.Registry, p *Pipeline) *pipelineMetrics {
	m := &pipelineMetrics{
		frames:    r.Counter("edged_frames_total", "Frames delivered by the camera's source.", "camera"),
		skipped:   r.Counter("edged_frames_skipped_total", "Frames skipped to keep to the camera's fps cap.", "camera"),
		dropped:   r.Counter("edged_frames_dropped_total", "Frames replaced in the queue before detection could take them (back-pressure).", "camera"),
		processed: r.Counter("edged_frames_processed_total", "Frames that went through every stage.", "camera"),
		stage: r.Histogram("edged_stage_seconds", "Time a stage spent on one frame.",
			metrics.LatencyBuckets, "camera", "stage"),
		e2e: r.Histogram("edged_frame_latency_seconds", "From the source delivering a frame to the end of the chain.",
			metrics.LatencyBuckets, "camera"),
		stageErrors:  r.Counter("edged_stage_errors_total", "Frames a stage failed on (dropped).", "camera", "stage"),
		events:       r.Counter("edged_events_total", "Events queued for publishing, by type (recognized, unknown, camera, ...).", "type"),
		eventsLost:   r.Counter("edged_events_lost_total", "Events given up at shutdown because an output kept failing."),
		outputErrors: r.Counter("edged_event_output_errors_total", "Failed (retried) writes of an event output.", "output"),
	}
	r.GaugeFunc("edged_camera_fps", "Frames processed per second over the last second.", []string{"camera"},
		func(emit func(float64, ...string)) {
			for _, c := range p.sortedChains() {
				emit(c.FPS(), c.cam.Name)
			}
		})
	r.GaugeFunc("edged_queue_depth", "Frames waiting in front of a stage.", []string{"camera", "stage"},
		func(emit func(float64, ...string)) {
			for _, c := range p.sortedChains() {
				for i, q := range c.queues {
					emit(float64(len(q)), c.cam.Name, c.stageNames[i])
				}
			}
		})
	r.GaugeFunc("edged_event_queue_depth", "Events waiting for the event outputs.", nil,
		func(emit func(float64, ...string)) { emit(float64(len(p.events))) })
	return m
}

func (p *Pipeline) sortedChains() []*Chain {
	p.mu.Lock()
	cs := make([]*Chain, 0, len(p.chains))
	for _, c := range p.chains {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	sort.Slice(cs, func(i, j int) bool { return cs[i].cam.Name < cs[j].cam.Name })
	return cs
}

// StageStats summarises one stage's latency.
type StageStats struct {
	Stage          string
	Count          uint64
	Mean, P50, P95 float64 // seconds
}

// CameraStats is a snapshot of one camera's counters.
type CameraStats struct {
	Camera                              string
	Frames, Skipped, Dropped, Processed uint64
	FPS                                 float64
	Stages                              []StageStats // processors in order, then "output"
	Latency                             StageStats   // end to end
}

// Stats returns a snapshot of every running camera (sorted by name).
func (p *Pipeline) Stats() []CameraStats {
	var out []CameraStats
	for _, c := range p.sortedChains() {
		out = append(out, c.Stats())
	}
	return out
}

// Stats returns a snapshot of the camera's counters and stage latencies;
// valid while it runs and after it ended.
func (c *Chain) Stats() CameraStats {
	s := CameraStats{
		Camera:    c.cam.Name,
		Frames:    uint64(c.frames.Value()),
		Skipped:   uint64(c.skipped.Value()),
		Dropped:   uint64(c.dropped.Value()),
		Processed: uint64(c.processed.Value()),
		FPS:       c.FPS(),
		Latency:   histStats("end-to-end", c.e2e),
	}
	for i, st := range c.stages {
		s.Stages = append(s.Stages, histStats(c.stageNames[i], st.latency))
	}
	return s
}

func histStats(name string, h metrics.Histogram) StageStats {
	s := StageStats{Stage: name, Count: h.Count()}
	if s.Count > 0 {
		s.Mean = h.Sum() / float64(s.Count)
		s.P50 = h.Quantile(0.5)
		s.P95 = h.Quantile(0.95)
	}
	if math.IsNaN(s.P50) {
		s.P50, s.P95 = 0, 0
	}
	return s
}

// EventCounts returns how many events of each type were queued.
func (p *Pipeline) EventCounts() map[string]uint64 {
	p.countMu.Lock()
	defer p.countMu.Unlock()
	out := make(map[string]uint64, len(p.eventCounts))
	for k, v := range p.eventCounts {
		out[k] = v
	}
	return out
}
