package pipeline

import (
	"fmt"
	"sort"
	"time"
)

// Health is a snapshot of what decides whether the pipeline is stuck: the
// event writer's current call and retries, and every stage's frame in
// progress. Check is a pure function of it (tests drive it with a fake
// clock; Pipeline.Health fills it from the running pipeline).
type Health struct {
	Now        time.Time
	StuckAfter time.Duration
	// Output is the event writer.
	Output OutputHealth
	// Stages are the stages of every running camera.
	Stages []StageHealth
}

// OutputHealth is the event writer's state.
type OutputHealth struct {
	// Name of the output the writer is on ("" when idle).
	Name string
	// CallSince is when the current WriteEvents call began (zero: not in
	// a call). A call that does not return is a hang.
	CallSince time.Time
	// FailingSince is when the current batch's first failed attempt was
	// (zero: not retrying). Retrying calls return: not a hang.
	FailingSince time.Time
	// Attempts of the current batch, and the last error.
	Attempts int
	LastErr  error
}

// StageHealth is one stage's state.
type StageHealth struct {
	Camera, Stage string
	// Busy is when the stage began its current frame (zero: idle), moved
	// forward by the time it spent waiting for room in the event queue.
	Busy time.Time
	// Blocked is when the stage began waiting for room in the event queue
	// (zero: not waiting): backpressure from the event output, not work.
	Blocked time.Time
}

// HealthReport is the verdict.
type HealthReport struct {
	// Stuck names the hang (nil: healthy): a stage that has worked on one
	// frame longer than StuckAfter (not counting waits for the event
	// queue), or an event output whose call has not returned for that
	// long. The watchdog stops and /healthz fails on it.
	Stuck error
	// Retrying describes an event output that fails and is being retried
	// ("" when none): the events wait (in the queue, then the cameras
	// drop frames), the daemon is degraded, not stuck.
	Retrying string
}

// Check decides. A retrying output is not a stuck pipeline: the watchdog
// stops only when a stage hangs (frames stop flowing through it for its
// own reasons) or an output call never returns.
func (h Health) Check() HealthReport {
	var r HealthReport
	o := h.Output
	if !o.CallSince.IsZero() && h.Now.Sub(o.CallSince) > h.StuckAfter {
		r.Stuck = fmt.Errorf("event output %s hangs: one call for %v", o.Name, h.Now.Sub(o.CallSince).Round(time.Second))
	}
	if !o.FailingSince.IsZero() {
		r.Retrying = fmt.Sprintf("event output %s failing for %v (%d attempts): %v", o.Name, h.Now.Sub(o.FailingSince).Round(time.Second), o.Attempts, o.LastErr)
	}
	if r.Stuck != nil {
		return r
	}
	stages := append([]StageHealth(nil), h.Stages...)
	sort.Slice(stages, func(i, j int) bool {
		return stages[i].Camera+"\x00"+stages[i].Stage < stages[j].Camera+"\x00"+stages[j].Stage
	})
	for _, s := range stages {
		if s.Busy.IsZero() {
			continue
		}
		end := h.Now
		if !s.Blocked.IsZero() {
			end = s.Blocked // waiting for the event queue is not work
		}
		if worked := end.Sub(s.Busy); worked > h.StuckAfter {
			r.Stuck = fmt.Errorf("camera %s: stage %s stuck for %v", s.Camera, s.Stage, worked.Round(time.Second))
			return r
		}
	}
	return r
}

// Health returns the pipeline's health snapshot (Options.Clock's time).
func (p *Pipeline) Health() Health {
	h := Health{Now: p.now(), StuckAfter: p.opts.StuckAfter}
	p.wmu.Lock()
	h.Output = p.wstate
	p.wmu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.chains {
		for i, st := range c.stages {
			h.Stages = append(h.Stages, StageHealth{Camera: c.cam.Name, Stage: c.stageNames[i],
				Busy: unixTime(st.busy.Load()), Blocked: unixTime(st.blocked.Load())})
		}
	}
	return h
}

// Healthy returns the error naming a hang (Health().Check().Stuck): a
// stage working on one frame longer than StuckAfter, or an event output
// whose call has not returned for that long. The watchdog stops pinging
// and /healthz fails on it, so systemd restarts a daemon that hangs. An
// output that fails and is retried is not a hang (see Retrying).
func (p *Pipeline) Healthy() error { return p.Health().Check().Stuck }

// Retrying describes an event output that is failing and being retried,
// or "" (for /healthz and the MQTT status: degraded, not stuck).
func (p *Pipeline) Retrying() string { return p.Health().Check().Retrying }

func unixTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
