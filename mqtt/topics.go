package mqtt

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Defaults of the topic layout.
const (
	DefaultPrefix          = "edged"
	DefaultDiscoveryPrefix = "homeassistant"
)

// Topics relative to the device base (Topics.Base), as used in Event.Topic.
const (
	TopicRecognized   = "events/recognized"
	TopicUnknown      = "events/unknown"
	TopicEnrolled     = "events/enrolled"
	TopicDeleted      = "events/deleted"
	TopicFinetune     = "events/finetune"
	TopicCamera       = "events/camera"
	TopicAvailability = "availability"
	topicPeople       = "people"
	topicCameras      = "cameras"
	topicCmd          = "cmd"
	topicReply        = "reply"
)

// Availability payloads (retained on Topics.Availability).
const (
	Online  = "online"
	Offline = "offline"
)

// UnreadableID is the reply-topic segment for a request whose id cannot be
// read (not JSON, no id, id not a usable string).
const UnreadableID = "_"

// Topics is the topic layout of one device: everything lives under
// "<prefix>/<device>/".
type Topics struct {
	Base string // "<prefix>/<device>", e.g. "edged/kitchen-pi"
}

// NewTopics checks prefix and device and returns the layout. prefix may have
// several levels ("home/edged"); device is one level.
func NewTopics(prefix, device string) (Topics, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	for _, p := range strings.Split(prefix, "/") {
		if err := CheckSegment(p); err != nil {
			return Topics{}, fmt.Errorf("prefix %q: %w", prefix, err)
		}
	}
	if err := CheckSegment(device); err != nil {
		return Topics{}, fmt.Errorf("device %q: %w", device, err)
	}
	return Topics{Base: prefix + "/" + device}, nil
}

// Full returns the absolute topic of a relative one ("events/recognized").
func (t Topics) Full(rel string) string { return t.Base + "/" + rel }

// Availability is the retained online/offline topic (also the last will).
func (t Topics) Availability() string { return t.Full(TopicAvailability) }

// Command is the topic of command name; CommandFilter subscribes to all.
func (t Topics) Command(name string) string { return t.Full(topicCmd + "/" + name) }

// CommandFilter is the subscription filter for every command.
func (t Topics) CommandFilter() string { return t.Full(topicCmd + "/+") }

// Reply is the topic a reply to request id goes to ("_" when unreadable).
func (t Topics) Reply(id string) string { return t.Full(topicReply + "/" + id) }

// PersonState is the relative, retained presence topic of a person.
func PersonStateTopic(personID string) string {
	return topicPeople + "/" + personID + "/state"
}

// CameraStateTopic is the relative, retained state topic of a camera.
func CameraStateTopic(camera string) string {
	return topicCameras + "/" + camera + "/state"
}

// CheckSegment reports whether s can be one level of a topic: non-empty,
// valid UTF-8, at most 128 bytes, without '/', '+', '#', NUL or other control
// characters. Device ids, camera names and person ids must pass it.
func CheckSegment(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty level", ErrTopic)
	case len(s) > 128:
		return fmt.Errorf("%w: level longer than 128 bytes", ErrTopic)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: not valid UTF-8", ErrTopic)
	case strings.HasPrefix(s, "$"):
		return fmt.Errorf("%w: level starts with '$'", ErrTopic)
	}
	for _, r := range s {
		if r == '/' || r == '+' || r == '#' || r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q not allowed", ErrTopic, r)
		}
	}
	return nil
}

// CheckEventTopic reports whether rel is a valid relative event topic: one or
// more levels that each pass CheckSegment (so no wildcards, no leading or
// trailing '/'), and not a command or reply topic.
func CheckEventTopic(rel string) error {
	if rel == "" {
		return fmt.Errorf("%w: empty topic", ErrTopic)
	}
	levels := strings.Split(rel, "/")
	for _, l := range levels {
		if err := CheckSegment(l); err != nil {
			return fmt.Errorf("topic %q: %w", rel, err)
		}
	}
	if levels[0] == topicCmd || levels[0] == topicReply || rel == TopicAvailability {
		return fmt.Errorf("%w: %q is reserved", ErrTopic, rel)
	}
	return nil
}
