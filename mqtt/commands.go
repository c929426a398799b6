package mqtt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Command names (the last level of .../cmd/<name>).
const (
	CmdEnroll   = "enroll"
	CmdDelete   = "delete"
	CmdRename   = "rename"
	CmdList     = "list"
	CmdGet      = "get"
	CmdFeedback = "feedback"
	CmdFinetune = "finetune"
	CmdStatus   = "status"
)

// Limits bound what a command may carry. Zero fields take the defaults of
// DefaultLimits.
type Limits struct {
	MaxPayload    int `yaml:"max_payload"`     // bytes of one command message; default 16 MiB
	MaxImages     int `yaml:"max_images"`      // images per enroll; default 20
	MaxImageBytes int `yaml:"max_image_bytes"` // decoded bytes of one image; default 8 MiB
	MaxImageSide  int `yaml:"max_image_side"`  // pixels, either side; default 6000
	MinImageSide  int `yaml:"min_image_side"`  // pixels, either side; default 32
	MaxPixels     int `yaml:"max_pixels"`      // width x height of one image; default 24 million (a 6000x4000 photo)
	MaxNextFaces  int `yaml:"max_next_faces"`  // next_faces of an enroll from a camera; default 50
	MaxTimeoutS   int `yaml:"max_timeout_s"`   // timeout_s of an enroll from a camera; default 600
	MaxNameLen    int `yaml:"max_name_len"`    // runes of a person name; default 128
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxPayload:    16 << 20,
		MaxImages:     20,
		MaxImageBytes: 8 << 20,
		MaxImageSide:  6000,
		MinImageSide:  32,
		MaxPixels:     24_000_000,
		MaxNextFaces:  50,
		MaxTimeoutS:   600,
		MaxNameLen:    128,
	}
}

// WithDefaults returns l with every zero (or negative) limit set to
// DefaultLimits' value: the router's limits, and those of any other path
// that validates the same requests (the web page).
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.MaxPayload, d.MaxPayload)
	set(&l.MaxImages, d.MaxImages)
	set(&l.MaxImageBytes, d.MaxImageBytes)
	set(&l.MaxImageSide, d.MaxImageSide)
	set(&l.MinImageSide, d.MinImageSide)
	set(&l.MaxPixels, d.MaxPixels)
	set(&l.MaxNextFaces, d.MaxNextFaces)
	set(&l.MaxTimeoutS, d.MaxTimeoutS)
	set(&l.MaxNameLen, d.MaxNameLen)
	return l
}

// Request is a command request: a struct with the json field "id" (the
// envelope) and the command's fields, checked by Validate after strict
// decoding. Validate returns an *Error (missing_field, invalid_field,
// too_large, bad_image).
type Request interface {
	Validate(Limits) error
}

// Image is an image sent as a base64 string (standard alphabet, padded; line
// breaks are ignored; a "data:image/...;base64," prefix is accepted). Before
// the Service sees it, Format is "jpeg" or "png", Width/Height are set, and
// the whole image has decoded once with Go's decoders, so a truncated or
// corrupt file never reaches OpenCV.
type Image struct {
	Data   []byte
	Format string
	Width  int
	Height int
}

// MarshalJSON writes the base64 string.
func (im Image) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.StdEncoding.EncodeToString(im.Data))
}

// Images is a list of base64 images; decoding reports the failing index.
type Images []Image

// UnmarshalJSON decodes an array of base64 strings.
func (ims *Images) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Errorf(CodeInvalidField, "images: must be an array of base64 strings")
	}
	out := make(Images, len(raw))
	for i, r := range raw {
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return Errorf(CodeInvalidField, "images[%d]: must be a base64 string", i)
		}
		if j := strings.Index(s, ";base64,"); strings.HasPrefix(s, "data:") && j > 0 {
			s = s[j+len(";base64,"):]
		}
		data, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Errorf(CodeBadImage, "images[%d]: not valid base64: %v", i, err)
		}
		out[i].Data = data
	}
	*ims = out
	return nil
}

// validate checks count, size and format of each image and fills Format,
// Width and Height (the slice's elements are shared with the caller).
func (ims Images) validate(l Limits) error {
	if len(ims) > l.MaxImages {
		return Errorf(CodeTooLarge, "images: %d images, at most %d", len(ims), l.MaxImages)
	}
	for i := range ims {
		im := &ims[i]
		if len(im.Data) == 0 {
			return Errorf(CodeBadImage, "images[%d]: empty", i)
		}
		if len(im.Data) > l.MaxImageBytes {
			return Errorf(CodeTooLarge, "images[%d]: %d bytes, at most %d", i, len(im.Data), l.MaxImageBytes)
		}
		var cfg image.Config
		var err error
		switch {
		case bytes.HasPrefix(im.Data, []byte("\xff\xd8\xff")):
			im.Format = "jpeg"
			cfg, err = jpeg.DecodeConfig(bytes.NewReader(im.Data))
		case bytes.HasPrefix(im.Data, []byte("\x89PNG\r\n\x1a\n")):
			im.Format = "png"
			cfg, err = png.DecodeConfig(bytes.NewReader(im.Data))
		default:
			return Errorf(CodeBadImage, "images[%d]: not a JPEG or PNG image", i)
		}
		if err != nil {
			return Errorf(CodeBadImage, "images[%d]: undecodable %s: %v", i, im.Format, err)
		}
		if cfg.Width > l.MaxImageSide || cfg.Height > l.MaxImageSide {
			return Errorf(CodeTooLarge, "images[%d]: %dx%d pixels, at most %d per side", i, cfg.Width, cfg.Height, l.MaxImageSide)
		}
		if cfg.Width*cfg.Height > l.MaxPixels {
			return Errorf(CodeTooLarge, "images[%d]: %dx%d pixels, at most %d in total", i, cfg.Width, cfg.Height, l.MaxPixels)
		}
		if im.Format == "jpeg" {
			// Go's decoder walks every block of the image once per scan, and
			// a progressive scan can cover the whole image in a few bytes:
			// bounding the scans bounds the decode time of a small file.
			if n := jpegScans(im.Data); n > maxJPEGScans {
				return Errorf(CodeBadImage, "images[%d]: %d JPEG scans, at most %d", i, n, maxJPEGScans)
			}
		}
		if cfg.Width < l.MinImageSide || cfg.Height < l.MinImageSide {
			return Errorf(CodeBadImage, "images[%d]: %dx%d pixels, at least %d per side", i, cfg.Width, cfg.Height, l.MinImageSide)
		}
		im.Width, im.Height = cfg.Width, cfg.Height
	}
	return nil
}

// maxJPEGScans bounds the scans of a JPEG (baseline: 1; progressive
// encoders write about 10).
const maxJPEGScans = 64

// jpegScans counts the start-of-scan segments of a JPEG by walking its
// markers (it stops at EOI or at the first malformed marker, which the
// decoder then reports).
func jpegScans(b []byte) int {
	scans := 0
	i := 2 // after SOI
	for i+1 < len(b) {
		if b[i] != 0xFF {
			return scans
		}
		m := b[i+1]
		switch {
		case m == 0xFF: // fill byte
			i++
			continue
		case m == 0xD9: // EOI
			return scans
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7): // no length
			i += 2
			continue
		}
		if i+3 >= len(b) {
			return scans
		}
		i += 2 + (int(b[i+2])<<8 | int(b[i+3]))
		if m != 0xDA { // not SOS
			continue
		}
		scans++
		if scans > maxJPEGScans {
			return scans
		}
		// Skip the entropy-coded data: up to the next marker that is not
		// a stuffed 0xFF00 or a restart marker.
		for i+1 < len(b) && (b[i] != 0xFF || b[i+1] == 0 || (b[i+1] >= 0xD0 && b[i+1] <= 0xD7)) {
			i++
		}
	}
	return scans
}

// decodeAll fully decodes every image (run by a command worker, not in the
// MQTT callback: it costs tens of milliseconds per photo).
func (ims Images) decodeAll() error {
	for i, im := range ims {
		var err error
		switch im.Format {
		case "jpeg":
			_, err = jpeg.Decode(bytes.NewReader(im.Data))
		case "png":
			_, err = png.Decode(bytes.NewReader(im.Data))
		default:
			err = fmt.Errorf("not validated")
		}
		if err != nil {
			return Errorf(CodeBadImage, "images[%d]: undecodable %s: %v", i, im.Format, err)
		}
	}
	return nil
}

// deepChecker is implemented by requests with checks too slow for the MQTT
// callback; the worker runs them before the handler.
type deepChecker interface {
	deepCheck() error
}

// checkName validates a person's display name.
func checkName(field, name string, l Limits) error {
	switch {
	case strings.TrimSpace(name) == "":
		return Errorf(CodeMissingField, "%s: required", field)
	case name != strings.TrimSpace(name):
		return Errorf(CodeInvalidField, "%s: leading or trailing space", field)
	case utf8.RuneCountInString(name) > l.MaxNameLen:
		return Errorf(CodeInvalidField, "%s: longer than %d characters", field, l.MaxNameLen)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return Errorf(CodeInvalidField, "%s: control or invalid character %q", field, r)
		}
	}
	return nil
}

// checkID validates an id that becomes a topic level (person, camera,
// unknown cluster).
func checkID(field, id string) error {
	if id == "" {
		return Errorf(CodeMissingField, "%s: required", field)
	}
	if err := CheckSegment(id); err != nil {
		return Errorf(CodeInvalidField, "%s: %v", field, err)
	}
	return nil
}

// EnrollRequest adds face samples to a person: a new one (Name) or an
// existing one (PersonID). Exactly one source: Images; FromUnknown (name an
// unknown-face cluster); or Camera with NextFaces (take the next N good faces
// of that camera, waiting at most TimeoutS seconds). The enrollment is all or
// nothing: if one image has no usable face, nothing is stored.
type EnrollRequest struct {
	ID          string  `json:"id"`
	Name        string  `json:"name,omitempty"`         // new person (or exactly one of name / person_id)
	PersonID    string  `json:"person_id,omitempty"`    // add samples to this existing person
	Images      Images  `json:"images,omitempty"`       // base64 JPEG / PNG, each with one face (the largest is used)
	FromUnknown string  `json:"from_unknown,omitempty"` // "unknown-3"
	Camera      string  `json:"camera,omitempty"`       // with next_faces
	NextFaces   int     `json:"next_faces,omitempty"`   // 1..MaxNextFaces
	TimeoutS    float64 `json:"timeout_s,omitempty"`    // camera source only; 0 = the service's default
}

// Validate implements Request.
func (r EnrollRequest) Validate(l Limits) error {
	switch {
	case r.Name != "" && r.PersonID != "":
		return Errorf(CodeInvalidField, "name, person_id: give one, not both")
	case r.PersonID != "":
		if err := checkID("person_id", r.PersonID); err != nil {
			return err
		}
	case r.Name == "":
		return Errorf(CodeMissingField, "name (or person_id): required")
	default:
		if err := checkName("name", r.Name, l); err != nil {
			return err
		}
	}
	sources := 0
	if r.Images != nil {
		sources++
	}
	if r.FromUnknown != "" {
		sources++
	}
	if r.Camera != "" || r.NextFaces != 0 || r.TimeoutS != 0 {
		sources++
	}
	switch {
	case sources == 0:
		return Errorf(CodeMissingField, "images, from_unknown or camera: one source is required")
	case sources > 1:
		return Errorf(CodeInvalidField, "images, from_unknown, camera: give exactly one source")
	case r.Images != nil:
		if len(r.Images) == 0 {
			return Errorf(CodeMissingField, "images: empty list")
		}
		return r.Images.validate(l)
	case r.FromUnknown != "":
		return checkID("from_unknown", r.FromUnknown)
	}
	if err := checkID("camera", r.Camera); err != nil {
		return err
	}
	switch {
	case r.NextFaces == 0:
		return Errorf(CodeMissingField, "next_faces: required with camera")
	case r.NextFaces < 0 || r.NextFaces > l.MaxNextFaces:
		return Errorf(CodeInvalidField, "next_faces: %d, want 1..%d", r.NextFaces, l.MaxNextFaces)
	case r.TimeoutS < 0 || r.TimeoutS > float64(l.MaxTimeoutS):
		return Errorf(CodeInvalidField, "timeout_s: %g, want 0..%d", r.TimeoutS, l.MaxTimeoutS)
	}
	return nil
}

func (r EnrollRequest) deepCheck() error { return r.Images.decodeAll() }

// EnrollResult is the reply result of enroll.
type EnrollResult struct {
	PersonID     string `json:"person_id"`
	Name         string `json:"name"`
	Created      bool   `json:"created"` // the person is new
	SamplesAdded int    `json:"samples_added"`
	SamplesTotal int    `json:"samples_total"`
}

// DeleteRequest removes a person with every sample.
type DeleteRequest struct {
	ID       string `json:"id"`
	PersonID string `json:"person_id"`
}

// Validate implements Request.
func (r DeleteRequest) Validate(Limits) error { return checkID("person_id", r.PersonID) }

// DeleteResult is the reply result of delete.
type DeleteResult struct {
	PersonID string `json:"person_id"`
	Name     string `json:"name"`
	Samples  int    `json:"samples"` // samples removed
}

// RenameRequest changes a person's display name (the id stays).
type RenameRequest struct {
	ID       string `json:"id"`
	PersonID string `json:"person_id"`
	Name     string `json:"name"`
}

// Validate implements Request.
func (r RenameRequest) Validate(l Limits) error {
	if err := checkID("person_id", r.PersonID); err != nil {
		return err
	}
	return checkName("name", r.Name, l)
}

// Person describes an enrolled person (result of rename and get, items of
// list).
type Person struct {
	PersonID   string    `json:"person_id"`
	Name       string    `json:"name"`
	Samples    int       `json:"samples"`
	Clusters   int       `json:"clusters"`
	Created    Timestamp `json:"created"`
	Updated    Timestamp `json:"updated"`
	LastSeen   Timestamp `json:"last_seen,omitzero"`
	LastCamera string    `json:"last_camera,omitempty"`
}

// ListRequest lists enrolled people (and unknown-face clusters with
// Unknown).
type ListRequest struct {
	ID      string `json:"id"`
	Unknown bool   `json:"unknown,omitempty"`
}

// Validate implements Request.
func (ListRequest) Validate(Limits) error { return nil }

// UnknownCluster describes a persistent unknown-face cluster.
type UnknownCluster struct {
	UnknownID string    `json:"unknown_id"`
	Count     int       `json:"count"` // faces seen
	FirstSeen Timestamp `json:"first_seen"`
	LastSeen  Timestamp `json:"last_seen"`
	Camera    string    `json:"camera,omitempty"` // last camera
}

// ListResult is the reply result of list.
type ListResult struct {
	People  []Person         `json:"people"`
	Unknown []UnknownCluster `json:"unknown,omitempty"`
}

// GetRequest asks for one person.
type GetRequest struct {
	ID       string `json:"id"`
	PersonID string `json:"person_id"`
}

// Validate implements Request.
func (r GetRequest) Validate(Limits) error { return checkID("person_id", r.PersonID) }

// FeedbackRequest says a track (or one stored sample) was NOT PersonID: the
// service removes samples that track contributed to the person, records the
// pair as a hard negative for fine-tuning, and, with CorrectPersonID, adds
// the track's faces to the right person.
type FeedbackRequest struct {
	ID              string `json:"id"`
	PersonID        string `json:"person_id"`                   // the wrong person
	Camera          string `json:"camera,omitempty"`            // with track
	Track           uint64 `json:"track,omitempty"`             // from the recognized event
	SampleID        string `json:"sample_id,omitempty"`         // or a stored sample
	CorrectPersonID string `json:"correct_person_id,omitempty"` // who it really was, if known
}

// Validate implements Request.
func (r FeedbackRequest) Validate(Limits) error {
	if err := checkID("person_id", r.PersonID); err != nil {
		return err
	}
	byTrack := r.Camera != "" || r.Track != 0
	switch {
	case byTrack && r.SampleID != "":
		return Errorf(CodeInvalidField, "camera/track, sample_id: give one, not both")
	case r.SampleID != "":
		if err := checkID("sample_id", r.SampleID); err != nil {
			return err
		}
	case !byTrack:
		return Errorf(CodeMissingField, "camera and track (or sample_id): required")
	default:
		if err := checkID("camera", r.Camera); err != nil {
			return err
		}
		if r.Track == 0 {
			return Errorf(CodeMissingField, "track: required with camera")
		}
	}
	if r.CorrectPersonID != "" {
		if err := checkID("correct_person_id", r.CorrectPersonID); err != nil {
			return err
		}
		if r.CorrectPersonID == r.PersonID {
			return Errorf(CodeInvalidField, "correct_person_id: same as person_id")
		}
	}
	return nil
}

// FeedbackResult is the reply result of feedback.
type FeedbackResult struct {
	SamplesRemoved int  `json:"samples_removed"`
	SamplesAdded   int  `json:"samples_added"`  // to correct_person_id
	NegativePairs  int  `json:"negative_pairs"` // recorded for fine-tuning
	Recorded       bool `json:"recorded"`
}

// Fine-tune losses (FinetuneRequest.Loss).
const (
	LossContrastive = "contrastive"
	LossTriplet     = "triplet"
)

// FinetuneRequest starts a fine-tune job; progress and the result arrive as
// events/finetune. The reply only says the job was accepted.
type FinetuneRequest struct {
	ID     string `json:"id"`
	Loss   string `json:"loss,omitempty"`   // contrastive | triplet; empty = configured default
	Epochs int    `json:"epochs,omitempty"` // 0 = configured default; at most 1000
	DryRun bool   `json:"dry_run,omitempty"`
}

// Validate implements Request.
func (r FinetuneRequest) Validate(Limits) error {
	switch r.Loss {
	case "", LossContrastive, LossTriplet:
	default:
		return Errorf(CodeInvalidField, "loss: %q, want contrastive or triplet", r.Loss)
	}
	if r.Epochs < 0 || r.Epochs > 1000 {
		return Errorf(CodeInvalidField, "epochs: %d, want 0..1000", r.Epochs)
	}
	return nil
}

// FinetuneResult is the reply result of finetune.
type FinetuneResult struct {
	JobID  string `json:"job_id"`
	State  string `json:"state"` // "started" (or "done" for a dry run)
	Epochs int    `json:"epochs"`
}

// StatusRequest asks for the device status.
type StatusRequest struct {
	ID string `json:"id"`
}

// Validate implements Request.
func (StatusRequest) Validate(Limits) error { return nil }

// CameraStatus is one camera in the status result.
type CameraStatus struct {
	Name   string  `json:"name"`
	Status string  `json:"status"` // up | down
	FPS    float64 `json:"fps"`
	Drops  uint64  `json:"drops"` // frames dropped under load since start
}

// StatusResult is the reply result of status.
type StatusResult struct {
	Device        string         `json:"device"`
	Version       string         `json:"version"`
	UptimeS       float64        `json:"uptime_s"`
	People        int            `json:"people"`
	Samples       int            `json:"samples"`
	Unknown       int            `json:"unknown"` // unknown-face clusters
	Model         string         `json:"model"`   // active head version
	Cameras       []CameraStatus `json:"cameras"`
	OutboxPending int            `json:"outbox_pending"`
	Finetune      string         `json:"finetune,omitempty"` // state of a running job
	// Health is "ok", or "degraded: storage_full" (the disk is below the
	// store's reserve: recognition runs, writes are refused) or "degraded:
	// output retrying" (events wait in the outbox), as /healthz says.
	Health string `json:"health"`
}

// ensure request types satisfy Request.
var (
	_ Request = EnrollRequest{}
	_ Request = DeleteRequest{}
	_ Request = RenameRequest{}
	_ Request = ListRequest{}
	_ Request = GetRequest{}
	_ Request = FeedbackRequest{}
	_ Request = FinetuneRequest{}
	_ Request = StatusRequest{}
)
