package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
)

// publisher publishes a replay's events to an MQTT broker through an
// in-memory outbox (a replay has no durable outbox of its own).
type publisher struct {
	box    *mqtt.MemOutbox
	client *mqtt.Client
	log    *slog.Logger
}

var _ pipeline.EventOutput = (*publisher)(nil)

// startPublisher connects to broker with cfg's MQTT settings (and client id
// plus "-replay") and waits for the connection (10 s at most).
func startPublisher(broker string, cfg config.Config, version string, log *slog.Logger) (*publisher, error) {
	p := &publisher{box: mqtt.NewMemOutbox(), log: log}
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
		return nil, fmt.Errorf("mqtt broker %s: %w", redact(broker), err)
	}
	return p, nil
}

// Name implements pipeline.Named.
func (p *publisher) Name() string { return "mqtt" }

// WriteEvents implements pipeline.EventOutput.
func (p *publisher) WriteEvents(events []pipeline.Event) error {
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

// Close implements pipeline.EventOutput (finish disconnects).
func (p *publisher) Close() error { return nil }

// finish waits until the broker acknowledged every event (at most 30 s),
// then disconnects.
func (p *publisher) finish() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.client.Flush(ctx)
	p.client.Close()
	if err != nil {
		return fmt.Errorf("mqtt: %d events not acknowledged: %w", p.box.Len(), err)
	}
	return nil
}
