// Package agent is the edged daemon as a library: what `edged run` runs,
// without the command line.
//
// # Usage
//
//	a, err := agent.New(agent.Options{Config: cfg, DataDir: dir, ModelDir: models, Logger: log})
//	if err != nil {
//		return err // errors.As(err, &agent.StartupError{}): restarting will not help
//	}
//	err = a.Run(ctx) // cameras, READY; until ctx ends; then Close
//
// or, step by step: Start (the cameras), Wait (until file cameras end),
// Reload (a new configuration: what can change applies at once, the rest is
// reported), Health (/healthz), Close.
//
// # Parts
//
// New opens, in order: the embedded MQTT broker (when no broker URL is
// configured), the Core (store, gallery, unknown-face clusters, detector,
// embedder, enroller and the MQTT command service), the pipeline with the
// store's outbox as its event output, the background work (store GC and the
// fine-tune job), the MQTT client (publishes the outbox, serves the
// commands) and the /metrics and /healthz endpoint. Start builds one
// pipeline chain per camera (capture, detect, recognize: Core.newCamera).
// Close stops them in the reverse order, each after the ones that feed it.
//
// Core is also what `edged replay` and `edged bench` open (read-only) to run
// the same chains over a video file.
package agent
