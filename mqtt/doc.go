// Package mqtt is edged's outside interface: recognition events out,
// enrollment commands in, over MQTT (paho client, MQTT 3.1.1), plus an
// embedded broker (mochi-mqtt) for first runs without one. It knows nothing
// of TensorFlow or GoCV and builds with CGO_ENABLED=0.
//
// # Topics
//
// Everything lives under "<prefix>/<device>/" (default "edged/<hostname>"):
// events/{recognized,unknown,enrolled,deleted,finetune,camera}, retained
// people/<id>/state and cameras/<camera>/state, retained availability
// (online / offline, also the last will), cmd/<name> in and reply/<id> out.
// docs/mqtt.md is the reference, docs/schema/ has a JSON schema per payload.
//
// # Usage
//
//   - Events: the pipeline builds payloads (Recognized, Unknown, Enrolled,
//     Deleted, Finetune, Camera, PersonState, CameraState), turns them into
//     Events with NewEvent and appends them to the store's durable outbox.
//     The Client drains the Outbox in order with QoS 1 and acks each event
//     only after the broker's PUBACK, so a broker outage or a restart loses
//     nothing (at least once: a duplicate is possible after a reconnect).
//   - Commands: NewServiceRouter binds the eight commands (enroll, delete,
//     rename, list, get, feedback, finetune, status) to a Service; Router.Handle
//     with Command adds others. The paho callback only decodes (strictly,
//     with size, base64 and image checks) and queues; workers run the Service
//     and reply {"id", "ok", "result"} or {"id", "ok": false, "error": {"code",
//     "message"}} on reply/<id> (reply/_ when the id is unreadable).
//   - Client: New(Options, Outbox, *Router), Start, Close (drains commands and
//     the outbox, publishes offline). Reconnects with backoff forever.
//   - Broker: StartBroker(addr, logger) on loopback; Credentials give edged
//     the only account that may publish events; Close it after the Client.
package mqtt
