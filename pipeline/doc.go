// Package pipeline runs edged's per-camera processing chains, shaped like
// Telegraf's agent: sources -> processors -> outputs, each a small
// interface, connected by bounded channels.
//
// # Usage
//
//	p := pipeline.New(pipeline.Options{Logger: log, Metrics: reg}, outbox, jsonl)
//	p.Start()
//	cam, err := p.AddCamera(ctx, pipeline.Camera{
//		Name:       "door",
//		Source:     src,                                   // emits *Frame
//		Processors: []pipeline.Processor{detector, recognizer},
//		Outputs:    []pipeline.FrameOutput{annotator},      // optional
//	})
//	...
//	p.Close() // stop sources, drain every queue, flush and close the event outputs
//
// Run(ctx, opts, cameras, outputs...) does all of that for a fixed set of
// cameras and returns when every source has ended (replay, bench, tests).
//
// # Flow and shutdown
//
// Each camera is a chain of goroutines: the source, one per processor, and
// one for the frame outputs. Consumers start first. Only the source watches
// its context: when it ends (cancelled, end of file, or a fatal error) its
// frame channel is closed, and each later stage drains its input, flushes
// (Flusher), and closes its own output. Events from every camera go through
// one bounded channel to the event outputs, which are flushed and closed
// last.
//
// # Back-pressure
//
// The queue from a source to the first processor holds one frame; a newer
// frame replaces one not yet picked up (drop oldest, counted in
// edged_frames_dropped_total), so live cameras are always processed at their
// latest frame. Cameras marked Lossless (recorded files in fast mode) block
// instead. Every later queue blocks, and events are never dropped: a slow
// event output slows the processors, which makes the first queue drop
// frames.
//
// The package is pure Go: images are opaque (Image) and released exactly
// once, by the stage that drops the frame or after the frame outputs.
package pipeline
