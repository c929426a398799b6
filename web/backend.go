package web

import (
	"context"
	"time"
)

// Backend is what the web page needs from the daemon. Package web/backend
// implements it over the service layer the MQTT commands use, so the page
// and MQTT behave the same; tests implement it directly.
//
// Methods are called concurrently from request goroutines. An error with a
// Code() string method (mqtt.Error, enroll.Error, *web.Error) picks the
// HTTP status (see statusOf); any other error is a 500 and is logged, its
// text is not shown.
type Backend interface {
	// People lists everyone enrolled, sorted by name.
	People(ctx context.Context) ([]Person, error)
	// Person returns one person with their samples.
	Person(ctx context.Context, personID string) (PersonDetail, error)
	// Rename gives a person a new (unique) name.
	Rename(ctx context.Context, personID, name string) (Person, error)
	// DeletePerson removes a person with every sample.
	DeletePerson(ctx context.Context, personID string) error
	// RemoveSample deletes one sample (a bad picture of the right person);
	// the last sample cannot be removed (code conflict).
	RemoveSample(ctx context.Context, personID, sampleID string) error
	// Feedback says a face was NOT the person: a stored sample (SampleID,
	// which is removed) or a recognition (Camera and Track).
	Feedback(ctx context.Context, f Feedback) error
	// SampleThumbnail returns a sample's face crop (PNG). sampleID ""
	// means the person's picture (Person.Thumb). It returns nil and no
	// error when no crop was kept.
	SampleThumbnail(ctx context.Context, personID, sampleID string) ([]byte, error)

	// Unknowns lists the unknown-face clusters, most recently seen first.
	Unknowns(ctx context.Context) ([]Unknown, error)
	// UnknownThumbnail returns crop slot i of a cluster (PNG); i < 0 means
	// the newest kept. It returns nil and no error when there is none.
	UnknownThumbnail(ctx context.Context, unknownID string, i int) ([]byte, error)
	// EnrollUnknown turns a cluster into a new person (name) or adds its
	// faces to an existing one (personID); exactly one is set.
	EnrollUnknown(ctx context.Context, unknownID, name, personID string) (EnrollResult, error)
	// DismissUnknown deletes a cluster (nobody the user wants to name).
	DismissUnknown(ctx context.Context, unknownID string) error

	// Cameras lists the running cameras.
	Cameras(ctx context.Context) ([]Camera, error)
	// CameraFrame returns the camera's latest frame as a JPEG, with the
	// face boxes and names drawn.
	CameraFrame(ctx context.Context, camera string) ([]byte, error)

	// Model describes the backbone, the head versions and the fine-tune.
	Model(ctx context.Context) (Model, error)
	// ActivateHead makes a head version the active one ("" = none: the
	// frozen network) and switches the running gallery to it.
	ActivateHead(ctx context.Context, headID string) error
	// RollbackHead activates the version before the active one (skipping
	// rejected ones) and returns its id ("" = none active).
	RollbackHead(ctx context.Context) (string, error)
	// StartFinetune starts a fine-tune job and returns its id.
	StartFinetune(ctx context.Context) (string, error)

	// Subscribe returns the live events until ctx ends (then the channel
	// is closed). The server subscribes once and fans the events out.
	Subscribe(ctx context.Context) <-chan Event
}

// Person is an enrolled person as the page lists them.
type Person struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Samples int    `json:"samples"`
	// Thumb is the sample whose crop is the person's picture; "" when no
	// sample kept its crop (NoThumb says why).
	Thumb      string    `json:"thumb,omitempty"`
	NoThumb    string    `json:"no_thumb,omitempty"`
	Created    time.Time `json:"created"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
	LastCamera string    `json:"last_camera,omitempty"`
}

// Sample is one enrolled face of a person.
type Sample struct {
	ID      string    `json:"id"`
	Quality float64   `json:"quality"`
	Source  string    `json:"source"`        // file | mqtt | track | unknown
	Ref     string    `json:"ref,omitempty"` // file name, request id, camera/track, unknown-N
	HasCrop bool      `json:"has_crop"`      // a thumbnail can be served
	Created time.Time `json:"created"`
}

// PersonDetail is a person with their samples (person page).
type PersonDetail struct {
	Person
	SampleList []Sample `json:"sample_list"`
}

// Feedback is a "not this person" correction.
type Feedback struct {
	PersonID string `json:"person_id"`
	SampleID string `json:"sample_id,omitempty"`
	Camera   string `json:"camera,omitempty"`
	Track    uint64 `json:"track,omitempty"`
}

// Unknown is an unknown-face cluster.
type Unknown struct {
	ID        string    `json:"id"` // unknown-N
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Camera    string    `json:"camera,omitempty"` // last camera
	// Thumbs are the crop slots kept, newest first; empty when none
	// (NoThumb says why).
	Thumbs  []int  `json:"thumbs"`
	NoThumb string `json:"no_thumb,omitempty"`
}

// EnrollResult is the outcome of an enrollment.
type EnrollResult struct {
	PersonID     string `json:"person_id"`
	Name         string `json:"name"`
	Created      bool   `json:"created"`
	SamplesAdded int    `json:"samples_added"`
	SamplesTotal int    `json:"samples_total"`
}

// Camera states.
const (
	CameraUp   = "up"
	CameraDown = "down"
)

// Camera is a running camera's state.
type Camera struct {
	Name   string  `json:"name"`
	State  string  `json:"state"`            // up | down
	Reason string  `json:"reason,omitempty"` // why it is down
	FPS    float64 `json:"fps"`
	Drops  uint64  `json:"drops"` // frames dropped under load since start
}

// Model is the matching model's state.
type Model struct {
	Backbone   string   `json:"backbone"`
	ActiveHead string   `json:"active_head"` // "" = the frozen network
	Heads      []Head   `json:"heads"`       // oldest first
	Finetune   Finetune `json:"finetune"`
}

// Head is a fine-tuned head version.
type Head struct {
	ID       string             `json:"id"`
	Created  time.Time          `json:"created"`
	Backbone string             `json:"backbone"`
	Active   bool               `json:"active"`
	Note     string             `json:"note,omitempty"`
	Metrics  map[string]float64 `json:"metrics,omitempty"` // guard metrics (after and before_*)
	// Usable is false for a version that cannot be activated; Why says why
	// (rejected by the guard, another backbone, weights do not decode).
	Usable bool   `json:"usable"`
	Why    string `json:"why,omitempty"`
}

// Finetune is the fine-tune job's state (the last finetune event).
type Finetune struct {
	Enabled  bool      `json:"enabled"`
	State    string    `json:"state,omitempty"` // "" idle, started | progress | done | rejected | failed
	JobID    string    `json:"job_id,omitempty"`
	Progress float64   `json:"progress"` // 0..1
	Epoch    int       `json:"epoch,omitempty"`
	Epochs   int       `json:"epochs,omitempty"`
	Head     string    `json:"head_version,omitempty"`
	Message  string    `json:"message,omitempty"`
	Time     time.Time `json:"time,omitzero"`
}

// Event types (Event.Type).
const (
	EventRecognized = "recognized"
	EventUnknown    = "unknown"
	EventEnrolled   = "enrolled"
	EventDeleted    = "deleted"
	EventCamera     = "camera"
	EventFinetune   = "finetune"
)

// Event is a live event for the page.
type Event struct {
	// Seq is set by the server (the SSE id); backends leave it 0.
	Seq        uint64    `json:"seq"`
	Type       string    `json:"type"`
	Time       time.Time `json:"time"`
	Camera     string    `json:"camera,omitempty"`
	Track      uint64    `json:"track,omitempty"`
	PersonID   string    `json:"person_id,omitempty"`
	Name       string    `json:"name,omitempty"`
	UnknownID  string    `json:"unknown_id,omitempty"`
	Confidence float64   `json:"confidence,omitempty"`
	State      string    `json:"state,omitempty"`  // camera up | down; finetune state
	Reason     string    `json:"reason,omitempty"` // camera down, finetune message
	Progress   float64   `json:"progress,omitempty"`
	// Thumb is the URL of the face's picture, set by the server.
	Thumb string `json:"thumb,omitempty"`
}
