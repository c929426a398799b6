package mqtt

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkDecodeEnroll: decoding and checking an enroll command with three
// photos (the part that runs in the MQTT callback), per command.
func BenchmarkDecodeEnroll(b *testing.B) {
	photos := realPhotos(b, 3)
	if len(photos) == 0 {
		photos = []string{b64(testPNG(b, 640, 480)), b64(testPNG(b, 640, 480)), b64(testPNG(b, 640, 480))}
	}
	payload, _ := json.Marshal(map[string]any{"id": "bench", "name": "Alice", "images": photos})
	r := NewServiceRouter(newFakeService(), Limits{}, nil)
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if c := r.Decode(CmdEnroll, payload); c.Err() != nil {
			b.Fatal(c.Err())
		}
	}
}

// BenchmarkPublishEvents: events/s from the outbox to the embedded broker
// (QoS 1, acked one by one after PUBACK).
func BenchmarkPublishEvents(b *testing.B) {
	br := startEmbedded(b, BrokerOptions{})
	u, p := br.Credentials()
	outbox := NewMemOutbox()
	c := startClient(b, br.URL(), outbox, NewRouter(Limits{}, nil), func(o *Options) { o.Username, o.Password = u, p })
	waitConnected(b, c)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		produceRecognized(b, outbox, i+1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
