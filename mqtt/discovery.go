package mqtt

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Home Assistant MQTT discovery: one device per edged instance with, per
// camera, a "last person" sensor and an "online" connectivity sensor (both
// read cameras/<camera>/state), plus two event entities (recognized,
// unknown). Configs are retained and re-sent when Home Assistant announces
// itself on <discovery prefix>/status = "online".

// haDevice is the "device" block shared by every entity.
type haDevice struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model"`
	SWVersion    string   `json:"sw_version,omitempty"`
}

// haEntity is the subset of discovery fields edged uses.
type haEntity struct {
	Name                string   `json:"name"`
	UniqueID            string   `json:"unique_id"`
	StateTopic          string   `json:"state_topic"`
	ValueTemplate       string   `json:"value_template,omitempty"`
	JSONAttributesTopic string   `json:"json_attributes_topic,omitempty"`
	EventTypes          []string `json:"event_types,omitempty"`
	DeviceClass         string   `json:"device_class,omitempty"`
	Icon                string   `json:"icon,omitempty"`
	AvailabilityTopic   string   `json:"availability_topic"`
	PayloadAvailable    string   `json:"payload_available"`
	PayloadNotAvailable string   `json:"payload_not_available"`
	Device              haDevice `json:"device"`
}

// DiscoveryMessage is one retained discovery config (exported for tests and
// for `edged` to print what it announces).
type DiscoveryMessage struct {
	Topic   string
	Payload []byte // empty: remove the entity
}

var haUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// haID makes a string usable as a discovery node or object id.
func haID(s string) string {
	s = strings.Trim(haUnsafe.ReplaceAllString(s, "_"), "_")
	if s == "" {
		return "x"
	}
	return s
}

// Discovery returns the discovery configs for the given cameras, and empty
// payloads for removed cameras (which deletes their entities).
func (c *Client) Discovery(cameras, removed []string) []DiscoveryMessage {
	o := c.opts
	node := "edged_" + haID(o.Device)
	dev := haDevice{
		Identifiers:  []string{node},
		Name:         o.HomeAssistant.Name,
		Manufacturer: "edged",
		Model:        "edged face recognition",
		SWVersion:    o.Version,
	}
	base := func(name, uid, state string) haEntity {
		return haEntity{
			Name: name, UniqueID: node + "_" + uid, StateTopic: state,
			AvailabilityTopic: c.topics.Availability(), PayloadAvailable: Online, PayloadNotAvailable: Offline,
			Device: dev,
		}
	}
	topic := func(component, object string) string {
		return o.HomeAssistant.Prefix + "/" + component + "/" + node + "/" + object + "/config"
	}
	var out []DiscoveryMessage
	add := func(t string, e haEntity) {
		b, _ := json.Marshal(e)
		out = append(out, DiscoveryMessage{Topic: t, Payload: b})
	}
	for _, kind := range []string{TypeRecognized, TypeUnknown} {
		e := base(map[string]string{TypeRecognized: "Face recognized", TypeUnknown: "Unknown face"}[kind], kind, c.topics.Full("events/"+kind))
		e.EventTypes = []string{kind}
		// HA wants {"event_type": ...}; keep every field as an attribute.
		e.ValueTemplate = "{{ dict(value_json, event_type=value_json.type) | to_json }}"
		e.Icon = "mdi:face-recognition"
		add(topic("event", kind), e)
	}
	for _, cam := range cameras {
		id := haID(cam)
		state := c.topics.Full(CameraStateTopic(cam))
		p := base(cam+" last person", id+"_person", state)
		p.ValueTemplate = "{{ value_json.name if value_json.name is defined else 'none' }}"
		p.JSONAttributesTopic = state
		p.Icon = "mdi:account-eye"
		add(topic("sensor", id+"_person"), p)
		up := base(cam+" online", id+"_online", state)
		up.ValueTemplate = "{{ 'ON' if value_json.status == 'up' else 'OFF' }}"
		up.DeviceClass = "connectivity"
		add(topic("binary_sensor", id+"_online"), up)
	}
	for _, cam := range removed {
		id := haID(cam)
		out = append(out,
			DiscoveryMessage{Topic: topic("sensor", id+"_person")},
			DiscoveryMessage{Topic: topic("binary_sensor", id+"_online")})
	}
	return out
}

// SetCameras replaces the cameras announced to Home Assistant and re-sends
// discovery if connected (entities of removed cameras are deleted).
func (c *Client) SetCameras(cameras []string) error {
	for _, cam := range cameras {
		if err := CheckSegment(cam); err != nil {
			return fmt.Errorf("camera %q: %w", cam, err)
		}
	}
	c.camMu.Lock()
	for _, old := range c.cameras {
		if !slices.Contains(cameras, old) && !slices.Contains(c.removed, old) {
			c.removed = append(c.removed, old)
		}
	}
	c.removed = slices.DeleteFunc(c.removed, func(s string) bool { return slices.Contains(cameras, s) })
	c.cameras = append([]string(nil), cameras...)
	c.camMu.Unlock()
	if c.Connected() {
		c.publishDiscovery()
	}
	return nil
}

// publishDiscovery sends the retained discovery configs (not through the
// outbox: they are re-sent on every connect and Home Assistant birth).
func (c *Client) publishDiscovery() {
	if c.opts.HomeAssistant.Disabled {
		return
	}
	c.camMu.Lock()
	msgs := c.Discovery(c.cameras, c.removed)
	c.camMu.Unlock()
	var toks []paho.Token
	for _, m := range msgs {
		toks = append(toks, c.pc.Publish(m.Topic, 1, true, m.Payload))
	}
	for i, t := range toks {
		if !t.WaitTimeout(c.opts.PublishTimeout) || t.Error() != nil {
			c.log.Warn("home assistant discovery not published", "topic", msgs[i].Topic, "err", t.Error())
		}
	}
}

// onHAStatus re-sends discovery when Home Assistant (re)starts.
func (c *Client) onHAStatus(_ paho.Client, m paho.Message) {
	if strings.TrimSpace(string(m.Payload())) == Online {
		c.log.Info("home assistant came online; re-sending discovery")
		go c.publishDiscovery()
	}
}
