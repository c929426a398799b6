package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/edged-dev/edged/mqtt"
)

// JSONLines writes events as JSON lines: each line is the event's MQTT
// payload with a "topic" field first (the full topic, <base>/<relative>),
// the format of `edged replay --events`. Only events/... topics are
// written (not the retained person and camera state).
type JSONLines struct {
	mu    sync.Mutex
	w     *bufio.Writer
	c     io.Closer // closed by Close when set
	base  string
	lines int
}

var _ EventOutput = (*JSONLines)(nil)

// NewJSONLines writes to w; base is the topic prefix ("edged/<device>").
// When w is an io.Closer, Close closes it.
func NewJSONLines(w io.Writer, base string) *JSONLines {
	j := &JSONLines{w: bufio.NewWriter(w), base: strings.TrimSuffix(base, "/")}
	if c, ok := w.(io.Closer); ok {
		j.c = c
	}
	return j
}

// Name implements Named.
func (j *JSONLines) Name() string { return "jsonl" }

// EventLine is one line of JSONLines: the payload's JSON object with
// "topic" inserted first. Events carry their event_id and boot_id, as on
// MQTT.
func EventLine(base string, p Payload) ([]byte, error) {
	p = mqtt.Identify(p) // a no-op for events that came through a Pipeline
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", p.Topic(), err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("payload of %s is not a JSON object", p.Topic())
	}
	topic, _ := json.Marshal(base + "/" + p.Topic())
	var out bytes.Buffer
	out.WriteString(`{"topic":`)
	out.Write(topic)
	if len(b) > 2 {
		out.WriteByte(',')
	}
	out.Write(b[1:])
	return out.Bytes(), nil
}

// WriteEvents implements EventOutput.
func (j *JSONLines) WriteEvents(events []Event) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range events {
		if e.Payload == nil || !strings.HasPrefix(e.Payload.Topic(), "events/") {
			continue
		}
		line, err := EventLine(j.base, e.Payload)
		if err != nil {
			return err
		}
		if _, err := j.w.Write(append(line, '\n')); err != nil {
			return err
		}
		j.lines++
	}
	return j.w.Flush()
}

// Lines is the number of lines written.
func (j *JSONLines) Lines() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lines
}

// Close flushes and closes the underlying writer when it is a Closer.
func (j *JSONLines) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.w.Flush()
	if j.c != nil {
		if cerr := j.c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// LogOutput logs each event (recognized, unknown, camera) at info level:
// what a user watching the journal wants to see.
type LogOutput struct{ Log *slog.Logger }

var _ EventOutput = LogOutput{}

// Name implements Named.
func (LogOutput) Name() string { return "log" }

// WriteEvents implements EventOutput.
func (l LogOutput) WriteEvents(events []Event) error {
	for _, e := range events {
		if e.Payload == nil || !strings.HasPrefix(e.Payload.Topic(), "events/") {
			continue
		}
		b, err := json.Marshal(e.Payload)
		if err != nil {
			continue
		}
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		attrs := []any{"camera", e.Camera}
		for _, k := range []string{"track", "name", "person_id", "unknown_id", "confidence", "distance", "state", "reason"} {
			if v, ok := m[k]; ok && v != "" {
				attrs = append(attrs, k, v)
			}
		}
		l.Log.Info(strings.TrimPrefix(e.Payload.Topic(), "events/"), attrs...)
	}
	return nil
}

// Close implements EventOutput.
func (LogOutput) Close() error { return nil }

// Tee is an EventOutput that calls a function for each event (summaries,
// tests).
type Tee func(Event)

// Name implements Named.
func (Tee) Name() string { return "tee" }

// WriteEvents implements EventOutput.
func (t Tee) WriteEvents(events []Event) error {
	for _, e := range events {
		t(e)
	}
	return nil
}

// Close implements EventOutput.
func (Tee) Close() error { return nil }
