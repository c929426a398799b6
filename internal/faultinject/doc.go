// Package faultinject holds edged's fault-injection suite (tests only):
// a child process serves MQTT enroll commands through the real service,
// enroller and store behind the embedded broker, commits outbox events
// and fine-tune heads, and is killed with SIGKILL at random moments; after
// every kill the store must open read-only (crash repair), every enroll
// answered ok must be there with all its samples, no person may be
// partial, and every committed event must be in the outbox. Other tests
// cover the outbox bound while the broker is down (exact dropped counts)
// and a corrupt value log.
//
// `go test ./internal/faultinject` runs 10 kills (about 15 s); `make soak`
// runs 100 (EDGED_SOAK_KILLS). -short skips the kill loop.
package faultinject
