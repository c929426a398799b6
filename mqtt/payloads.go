package mqtt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"strings"
	"time"

	"github.com/edged-dev/edged/internal/ulid"
)

// Event types: the "type" field of every event payload.
const (
	TypeRecognized  = "recognized"
	TypeUnknown     = "unknown"
	TypeEnrolled    = "enrolled"
	TypeDeleted     = "deleted"
	TypeFinetune    = "finetune"
	TypeCamera      = "camera"
	TypePersonState = "person_state"
	TypeCameraState = "camera_state"
)

// Camera states (Camera.State, CameraState.Status).
const (
	CameraUp   = "up"
	CameraDown = "down"
)

// Fine-tune job states (Finetune.State).
const (
	FinetuneStarted  = "started"
	FinetuneProgress = "progress"
	FinetuneDone     = "done"     // the new head passed the guard and is active
	FinetuneRejected = "rejected" // the new head was worse on the held-out check; the old one stays
	FinetuneFailed   = "failed"
)

// Enrollment sources (Enrolled.Source).
const (
	SourceImages  = "images"  // base64 images in an enroll command
	SourceUnknown = "unknown" // an unknown-face cluster that was named
	SourceCamera  = "camera"  // the next good faces of a camera
	SourceFile    = "file"    // `edged enroll` from files
)

// timeLayout is RFC 3339 with milliseconds, always UTC ("Z").
const timeLayout = "2006-01-02T15:04:05.000Z"

// Timestamp is a time that marshals as RFC 3339 with milliseconds in UTC
// ("2024-05-01T12:00:00.123Z"). Use At to build one. In `edged replay` it
// carries media time.
type Timestamp struct{ time.Time }

// At returns t in UTC truncated to milliseconds.
func At(t time.Time) Timestamp { return Timestamp{t.UTC().Truncate(time.Millisecond)} }

// MarshalJSON writes the RFC 3339 millisecond UTC form.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("timestamp year %d out of range", y)
	}
	return []byte(`"` + t.UTC().Format(timeLayout) + `"`), nil
}

// UnmarshalJSON reads any RFC 3339 time.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	*t = At(v)
	return nil
}

// Box is a face box in frame pixels: top-left corner, width and height.
type Box struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// BoxOf converts an image.Rectangle (e.g. face.Face.Box).
func BoxOf(r image.Rectangle) Box { return Box{X: r.Min.X, Y: r.Min.Y, W: r.Dx(), H: r.Dy()} }

// Payload is an event payload: it knows its topic (relative to the device
// base) and whether the broker should retain it.
type Payload interface {
	Topic() string
	Retained() bool
}

// NewEvent marshals p into an Event for the outbox (Seq is the outbox's to
// set), after Identify. It fails when p's topic is not a valid event topic
// (e.g. a camera name with '/').
func NewEvent(p Payload) (Event, error) {
	p = Identify(p)
	topic := p.Topic()
	if v, ok := p.(interface{ checkIDs() error }); ok {
		if err := v.checkIDs(); err != nil {
			return Event{}, err
		}
	}
	if err := CheckEventTopic(topic); err != nil {
		return Event{}, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return Event{}, fmt.Errorf("marshal %s: %w", topic, err)
	}
	return Event{Topic: topic, Payload: b, Retain: p.Retained()}, nil
}

// bootID identifies this run of edged: events of one run share it, and
// track ids are unique within it (not across runs).
var bootID = ulid.New()

// BootID returns the id of this process run (a ULID made at start), the
// boot_id of every event it produces.
func BootID() string { return bootID }

// Identify returns p with its event_id (a new ULID) and boot_id set, for
// the event types (events/...); other payloads are returned unchanged, as
// is an event that already has an id, so calling it again (the pipeline,
// then the outbox) keeps the first id. An event's id is made once, when
// it enters the pipeline or the outbox, and travels with it: a redelivery
// after a reconnect or a restart carries the same id, a new event a new
// one.
func Identify(p Payload) Payload {
	switch v := p.(type) {
	case Recognized:
		v.EventID, v.BootID = ids(v.EventID, v.BootID)
		return v
	case Unknown:
		v.EventID, v.BootID = ids(v.EventID, v.BootID)
		return v
	case Enrolled:
		v.EventID, v.BootID = ids(v.EventID, v.BootID)
		return v
	case Deleted:
		v.EventID, v.BootID = ids(v.EventID, v.BootID)
		return v
	case Finetune:
		v.EventID, v.BootID = ids(v.EventID, v.BootID)
		return v
	case Camera:
		v.EventID, v.BootID = ids(v.EventID, v.BootID)
		return v
	}
	return p
}

func ids(event, boot string) (string, string) {
	if event == "" {
		event = ulid.New()
	}
	if boot == "" {
		boot = bootID
	}
	return event, boot
}

// ClearRetained returns the event that removes a retained topic (an empty
// retained message), e.g. ClearRetained(PersonStateTopic(id)) after delete.
func ClearRetained(topic string) (Event, error) {
	if err := CheckEventTopic(topic); err != nil {
		return Event{}, err
	}
	return Event{Topic: topic, Payload: []byte{}, Retain: true}, nil
}

// Recognized: a track was decided to be an enrolled person (one event per
// person appearance, not per frame). Topic events/recognized.
type Recognized struct {
	Type       string    `json:"type"`             // always "recognized"
	EventID    string    `json:"event_id"`         // unique id of the event (ULID): the same on a redelivery, so de-duplicate on it
	BootID     string    `json:"boot_id"`          // id of the edged run that produced it (ULID, new at every start)
	Camera     string    `json:"camera"`           // camera name from the config
	Track      uint64    `json:"track"`            // track id, unique within a run (boot_id) across every camera and reload
	PersonID   string    `json:"person_id"`        // stable id of the person
	Name       string    `json:"name"`             // display name at the time of the event
	Distance   float64   `json:"distance"`         // distance to the person's nearest cluster (matching space; lower is closer)
	Confidence float64   `json:"confidence"`       // 0..1, from the distance and the open-set threshold
	Box        Box       `json:"box"`              // last face box of the track, frame pixels
	Quality    float64   `json:"quality"`          // face quality score 0..1 of the best face
	Frames     int       `json:"frames"`           // faces of the track that the decision used
	FirstSeen  Timestamp `json:"first_seen"`       // when the track started
	Time       Timestamp `json:"time"`             // when the decision was made
	Model      string    `json:"model,omitempty"`  // active head version
	Source     string    `json:"source,omitempty"` // media file in `edged replay`
}

func (Recognized) Topic() string  { return TopicRecognized }
func (Recognized) Retained() bool { return false }

// MarshalJSON always writes type "recognized".
func (p Recognized) MarshalJSON() ([]byte, error) {
	type plain Recognized
	p.Type = TypeRecognized
	return json.Marshal(plain(p))
}

// Unknown: a track of good-quality faces matched nobody. Topic events/unknown.
type Unknown struct {
	Type      string `json:"type"`                 // always "unknown"
	EventID   string `json:"event_id"`             // unique id of the event (ULID): the same on a redelivery, so de-duplicate on it
	BootID    string `json:"boot_id"`              // id of the edged run that produced it (ULID, new at every start)
	Camera    string `json:"camera"`               //
	Track     uint64 `json:"track"`                //
	UnknownID string `json:"unknown_id,omitempty"` // persistent unknown-face cluster ("unknown-3"); enroll with from_unknown
	// PersonID and Name are always null here: they are present so that a
	// consumer can read the same keys from every recognized/unknown event.
	PersonID *string `json:"person_id"`
	Name     *string `json:"name"`
	// Confidence is the calibrated confidence that the face is the nearest
	// person (low: that is why it is unknown).
	Confidence      float64   `json:"confidence"`
	NearestPersonID string    `json:"nearest_person_id,omitempty"` // closest enrolled person, if any
	NearestName     string    `json:"nearest_name,omitempty"`      //
	Distance        float64   `json:"distance"`                    // distance to the nearest enrolled person (above the threshold)
	Box             Box       `json:"box"`                         //
	Quality         float64   `json:"quality"`                     //
	Frames          int       `json:"frames"`                      //
	FirstSeen       Timestamp `json:"first_seen"`                  //
	Time            Timestamp `json:"time"`                        //
	Model           string    `json:"model,omitempty"`             //
	Source          string    `json:"source,omitempty"`            //
}

func (Unknown) Topic() string  { return TopicUnknown }
func (Unknown) Retained() bool { return false }

// MarshalJSON always writes type "unknown".
func (p Unknown) MarshalJSON() ([]byte, error) {
	type plain Unknown
	p.Type = TypeUnknown
	return json.Marshal(plain(p))
}

// Enrolled: samples were added to a person (new or existing). Topic
// events/enrolled.
type Enrolled struct {
	Type         string    `json:"type"`                 // always "enrolled"
	EventID      string    `json:"event_id"`             // unique id of the event (ULID): the same on a redelivery, so de-duplicate on it
	BootID       string    `json:"boot_id"`              // id of the edged run that produced it (ULID, new at every start)
	PersonID     string    `json:"person_id"`            //
	Name         string    `json:"name"`                 //
	Created      bool      `json:"created"`              // true when the person is new
	SamplesAdded int       `json:"samples_added"`        //
	SamplesTotal int       `json:"samples_total"`        //
	Source       string    `json:"source"`               // images | unknown | camera | file
	RequestID    string    `json:"request_id,omitempty"` // id of the enroll command, when there was one
	Time         Timestamp `json:"time"`                 //
}

func (Enrolled) Topic() string  { return TopicEnrolled }
func (Enrolled) Retained() bool { return false }

// MarshalJSON always writes type "enrolled".
func (p Enrolled) MarshalJSON() ([]byte, error) {
	type plain Enrolled
	p.Type = TypeEnrolled
	return json.Marshal(plain(p))
}

// Deleted: a person and all their samples were removed. Topic events/deleted.
type Deleted struct {
	Type      string    `json:"type"`     // always "deleted"
	EventID   string    `json:"event_id"` // unique id of the event (ULID): the same on a redelivery, so de-duplicate on it
	BootID    string    `json:"boot_id"`  // id of the edged run that produced it (ULID, new at every start)
	PersonID  string    `json:"person_id"`
	Name      string    `json:"name"`
	Samples   int       `json:"samples"` // samples removed
	RequestID string    `json:"request_id,omitempty"`
	Time      Timestamp `json:"time"`
}

func (Deleted) Topic() string  { return TopicDeleted }
func (Deleted) Retained() bool { return false }

// MarshalJSON always writes type "deleted".
func (p Deleted) MarshalJSON() ([]byte, error) {
	type plain Deleted
	p.Type = TypeDeleted
	return json.Marshal(plain(p))
}

// Finetune: progress and result of a fine-tune job. Topic events/finetune.
type Finetune struct {
	Type        string             `json:"type"`                   // always "finetune"
	EventID     string             `json:"event_id"`               // unique id of the event (ULID): the same on a redelivery, so de-duplicate on it
	BootID      string             `json:"boot_id"`                // id of the edged run that produced it (ULID, new at every start)
	JobID       string             `json:"job_id"`                 //
	State       string             `json:"state"`                  // started | progress | done | rejected | failed
	Progress    float64            `json:"progress"`               // 0..1
	Epoch       int                `json:"epoch,omitempty"`        // current epoch (1-based)
	Epochs      int                `json:"epochs,omitempty"`       // planned epochs
	Loss        *float64           `json:"loss,omitempty"`         // training loss of the last epoch
	HeadVersion string             `json:"head_version,omitempty"` // the new head (done / rejected)
	Metrics     map[string]float64 `json:"metrics,omitempty"`      // e.g. "accuracy_before", "accuracy_after"
	Message     string             `json:"message,omitempty"`      // why rejected / failed
	RequestID   string             `json:"request_id,omitempty"`   //
	Time        Timestamp          `json:"time"`                   //
}

func (Finetune) Topic() string  { return TopicFinetune }
func (Finetune) Retained() bool { return false }

// MarshalJSON always writes type "finetune".
func (p Finetune) MarshalJSON() ([]byte, error) {
	type plain Finetune
	p.Type = TypeFinetune
	return json.Marshal(plain(p))
}

// Camera: a camera source went down or came back. Topic events/camera.
type Camera struct {
	Type    string    `json:"type"`             // always "camera"
	EventID string    `json:"event_id"`         // unique id of the event (ULID): the same on a redelivery, so de-duplicate on it
	BootID  string    `json:"boot_id"`          // id of the edged run that produced it (ULID, new at every start)
	Camera  string    `json:"camera"`           //
	State   string    `json:"state"`            // up | down
	Reason  string    `json:"reason,omitempty"` // why it went down (no URLs or credentials)
	Time    Timestamp `json:"time"`             //
}

func (Camera) Topic() string  { return TopicCamera }
func (Camera) Retained() bool { return false }

// MarshalJSON always writes type "camera".
func (p Camera) MarshalJSON() ([]byte, error) {
	type plain Camera
	p.Type = TypeCamera
	return json.Marshal(plain(p))
}

// PersonState is a person's presence, retained on people/<person_id>/state:
// where and when they were last seen. Publish it with every Recognized event
// of the person and after enroll / rename; clear it (ClearRetained) after
// delete.
type PersonState struct {
	Type       string    `json:"type"` // always "person_state"
	PersonID   string    `json:"person_id"`
	Name       string    `json:"name"`
	Camera     string    `json:"camera,omitempty"`     // last camera that saw them; empty if never seen
	LastSeen   Timestamp `json:"last_seen,omitzero"`   // omitted if never seen
	Confidence float64   `json:"confidence,omitempty"` // of the last recognition
}

func (p PersonState) Topic() string { return PersonStateTopic(p.PersonID) }
func (p PersonState) checkIDs() error {
	if err := CheckSegment(p.PersonID); err != nil {
		return fmt.Errorf("person id %q: %w", p.PersonID, err)
	}
	return nil
}
func (PersonState) Retained() bool { return true }

// MarshalJSON always writes type "person_state".
func (p PersonState) MarshalJSON() ([]byte, error) {
	type plain PersonState
	p.Type = TypePersonState
	return json.Marshal(plain(p))
}

// CameraState is a camera's state for dashboards (the Home Assistant
// sensors read it), retained on cameras/<camera>/state: up or down and the
// last person it recognized. Publish it on camera up/down and with every
// Recognized event of the camera.
type CameraState struct {
	Type     string    `json:"type"` // always "camera_state"
	Camera   string    `json:"camera"`
	Status   string    `json:"status"`              // up | down
	PersonID string    `json:"person_id,omitempty"` // last recognized person
	Name     string    `json:"name,omitempty"`      //
	LastSeen Timestamp `json:"last_seen,omitzero"`  // when that person was recognized
	Time     Timestamp `json:"time"`                // of this state
}

func (p CameraState) Topic() string { return CameraStateTopic(p.Camera) }
func (p CameraState) checkIDs() error {
	if err := CheckSegment(p.Camera); err != nil {
		return fmt.Errorf("camera %q: %w", p.Camera, err)
	}
	return nil
}
func (CameraState) Retained() bool { return true }

// MarshalJSON always writes type "camera_state".
func (p CameraState) MarshalJSON() ([]byte, error) {
	type plain CameraState
	p.Type = TypeCameraState
	return json.Marshal(plain(p))
}

// DecodeEvent parses an event payload by its relative topic into the matching
// payload type (Recognized, Unknown, ...). Unknown fields are ignored, so
// newer producers stay readable. A retained topic's empty payload (cleared)
// returns (nil, nil).
func DecodeEvent(topic string, payload []byte) (Payload, error) {
	var p Payload
	switch {
	case topic == TopicRecognized:
		p = new(Recognized)
	case topic == TopicUnknown:
		p = new(Unknown)
	case topic == TopicEnrolled:
		p = new(Enrolled)
	case topic == TopicDeleted:
		p = new(Deleted)
	case topic == TopicFinetune:
		p = new(Finetune)
	case topic == TopicCamera:
		p = new(Camera)
	case strings.HasPrefix(topic, topicPeople+"/") && strings.HasSuffix(topic, "/state"):
		p = new(PersonState)
	case strings.HasPrefix(topic, topicCameras+"/") && strings.HasSuffix(topic, "/state"):
		p = new(CameraState)
	default:
		return nil, fmt.Errorf("%w: no event type for %q", ErrTopic, topic)
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(payload, p); err != nil {
		return nil, fmt.Errorf("decode %s: %w", topic, err)
	}
	// Return values, not pointers, so callers type-switch on one form.
	switch v := p.(type) {
	case *Recognized:
		return *v, nil
	case *Unknown:
		return *v, nil
	case *Enrolled:
		return *v, nil
	case *Deleted:
		return *v, nil
	case *Finetune:
		return *v, nil
	case *Camera:
		return *v, nil
	case *PersonState:
		return *v, nil
	case *CameraState:
		return *v, nil
	}
	return p, nil
}
