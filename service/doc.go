// Package service is the daemon's side of the MQTT interface: it implements
// mqtt.Service (enroll, delete, rename, list, get, feedback, finetune,
// status) over the store, the gallery, the enrollment path (package enroll)
// and the fine-tune job, and it connects the pipeline's events to the
// store's durable outbox that the MQTT client drains.
//
// # Usage
//
//	svc := service.New(service.Options{Store: st, Gallery: g, Enroller: en, ...})
//	out := service.NewOutboxOutput(st, svc)   // pipeline.EventOutput
//	box := service.NewStoreOutbox(st)         // mqtt.Outbox
//	client, _ := mqtt.New(opts, box, mqtt.NewServiceRouter(svc, limits, log))
//
// Errors returned to the MQTT router carry a stable code (Code() string):
// the enroll package's codes map onto the mqtt Code* constants.
//
// The package is pure Go: detection and embedding reach it through the
// enroll package's interfaces.
package service
