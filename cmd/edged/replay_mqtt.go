package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/edged-dev/edged/agent"
	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
)

// replayPublisher publishes a replay's events to an MQTT broker through an
// in-memory outbox (a replay has no durable outbox of its own).
type replayPublisher struct {
	box    *mqtt.MemOutbox
	client *mqtt.Client
	log    *slog.Logger
}

var _ pipeline.EventOutput = (*replayPublisher)(nil)

func startReplayPublisher(broker string, cfg config.Config, log *slog.Logger) (*replayPublisher, error) {
	p := &replayPublisher{box: mqtt.NewMemOutbox(), log: log}
	opts := mqtt.Options{
		Broker: broker, ClientID: cfg.MQTT.ClientID + "-replay", Username: cfg.MQTT.Username, Password: cfg.MQTT.Password,
		CAFile: cfg.MQTT.CAFile, CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile,
		Prefix: cfg.MQTT.TopicPrefix, Device: cfg.Device, KeepAlive: cfg.MQTT.KeepAlive,
		HomeAssistant: mqtt.HomeAssistantOptions{Disabled: true},
		Version:       version, Logger: log,
	}
	var err error
	if p.client, err = mqtt.New(opts, p.box, mqtt.NewRouter(mqtt.Limits{}, log)); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	if err := p.client.Start(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.client.WaitConnected(ctx); err != nil {
		p.client.Close()
		return nil, fmt.Errorf("mqtt broker %s: %w", agent.Redact(broker), err)
	}
	return p, nil
}

func (p *replayPublisher) Name() string { return "mqtt" }

func (p *replayPublisher) WriteEvents(events []pipeline.Event) error {
	for _, e := range events {
		pl, ok := e.Payload.(mqtt.Payload)
		if !ok {
			continue
		}
		if _, err := p.box.AppendPayload(pl); err != nil {
			p.log.Error("event cannot be published", "topic", pl.Topic(), "err", err)
		}
	}
	return nil
}

func (p *replayPublisher) Close() error { return nil }

// finish waits until the broker acknowledged every event (at most 30 s),
// then disconnects.
func (p *replayPublisher) finish() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.client.Flush(ctx)
	p.client.Close()
	if err != nil {
		return fmt.Errorf("mqtt: %d events not acknowledged: %w", p.box.Len(), err)
	}
	return nil
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
