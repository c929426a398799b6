package store

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Person is someone the gallery knows. Names are display data (unique,
// compared case-insensitively) and may change; the ID never does.
type Person struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Created    time.Time         `json:"created"`
	Updated    time.Time         `json:"updated"`
}

// Where a sample or negative came from.
const (
	SourceFile    = "file"    // edged enroll / eval, Ref is the file name
	SourceMQTT    = "mqtt"    // an MQTT enroll command, Ref is the request id
	SourceTrack   = "track"   // faces of a camera track, Ref is "camera/track"
	SourceUnknown = "unknown" // an unknown-face cluster, Ref is its id (unknown-N)
)

// LegacyBackbone is the backbone of every vector stored without a backbone
// id: databases from before edged recorded it (schema version 1) only ever
// held the dlib ResNet's 128-d embeddings.
const LegacyBackbone = "dlib"

// BackboneOf returns id, or LegacyBackbone when id is empty: the one place
// the legacy rule is applied.
func BackboneOf(id string) string {
	if id == "" {
		return LegacyBackbone
	}
	return id
}

// Sample is one enrolled face of a person. Embedding is the RAW backbone
// vector (not normalised, not projected), so a new fine-tuned head can
// re-project the gallery without the images.
type Sample struct {
	ID        string    `json:"id"`
	PersonID  string    `json:"person_id"`
	Embedding []float32 `json:"-"`
	// Backbone is the id of the network that computed Embedding (package
	// infer's registry); "" reads as LegacyBackbone (use BackboneID).
	// Vectors of different backbones are never compared.
	Backbone string    `json:"backbone,omitempty"`
	Quality  float32   `json:"quality"`
	Source   string    `json:"source"`
	Ref      string    `json:"ref,omitempty"`
	Created  time.Time `json:"created"`
	// HasChip is true when the face chip was kept (Options of package enroll;
	// off by default for privacy).
	HasChip bool `json:"has_chip,omitempty"`
	// HasCrop is true when the face crop (the face aligned to
	// face.CropTemplate, PNG) was kept: the sample can then be re-embedded
	// by another backbone instead of enrolled again.
	HasCrop bool `json:"has_crop,omitempty"`
}

// BackboneID is the sample's backbone, LegacyBackbone when none was recorded.
func (s Sample) BackboneID() string { return BackboneOf(s.Backbone) }

// Negative is a face the user said is NOT the person ("this is not X"). The
// gallery moves X's decision boundary away from it.
type Negative struct {
	ID        string    `json:"id"`
	PersonID  string    `json:"person_id"`
	Embedding []float32 `json:"-"`                  // raw backbone vector
	Backbone  string    `json:"backbone,omitempty"` // as Sample.Backbone
	Source    string    `json:"source"`
	Ref       string    `json:"ref,omitempty"`
	Created   time.Time `json:"created"`
	// HasCrop is true when the face crop was kept (as Sample.HasCrop).
	HasCrop bool `json:"has_crop,omitempty"`
}

// BackboneID is the negative's backbone, LegacyBackbone when none was
// recorded.
func (n Negative) BackboneID() string { return BackboneOf(n.Backbone) }

// Cluster is one mode of a person's samples in the matching space (after
// the head projection and L2 normalisation).
type Cluster struct {
	Centroid []float32 `json:"-"`
	// Spread is the largest distance of a member to the centroid.
	Spread  float32  `json:"spread"`
	Count   int      `json:"count"`
	Samples []string `json:"samples"`
}

// Clusters are a person's clusters as computed at the last enrollment.
// Head names the head version whose space they are in ("" = identity).
type Clusters struct {
	Head     string    `json:"head"`
	Updated  time.Time `json:"updated"`
	Clusters []Cluster `json:"clusters"`
}

// HeadVersion is a fine-tuned projection head. Weights are opaque here
// (package head encodes them); at most one version is active.
type HeadVersion struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Backbone is the backbone whose raw vectors the head projects (it is
	// only valid for that backbone's dimension); "" reads as
	// LegacyBackbone.
	Backbone string             `json:"backbone,omitempty"`
	Weights  []byte             `json:"weights"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Note     string             `json:"note,omitempty"`
	Active   bool               `json:"active"`
}

// BackboneID is the head's backbone, LegacyBackbone when none was recorded.
func (h HeadVersion) BackboneID() string { return BackboneOf(h.Backbone) }

// Unknown is a persistent identity for faces nobody enrolled, grown online
// from unknown tracks of good quality: "unknown-N". It can be enrolled later
// under a name.
type Unknown struct {
	ID        string    `json:"id"` // "unknown-<Number>"
	Number    uint64    `json:"number"`
	Count     int       `json:"count"` // faces (tracks) assigned so far
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Cameras   []string  `json:"cameras,omitempty"`
	// Backbone is the backbone of Centroid and of the samples (as
	// Sample.Backbone); "" reads as LegacyBackbone.
	Backbone string `json:"backbone,omitempty"`
	// Centroid is the mean of the members' L2-normalised raw embeddings.
	Centroid []float32 `json:"-"`
	// Samples keeps the best faces (by quality) for a later enrollment.
	Samples []UnknownSample `json:"samples"`
}

// BackboneID is the cluster's backbone: LegacyBackbone when none was
// recorded.
func (u Unknown) BackboneID() string { return BackboneOf(u.Backbone) }

// UnknownSample is one face kept in an unknown cluster.
type UnknownSample struct {
	Embedding []float32 `json:"-"`                  // raw backbone vector
	Backbone  string    `json:"backbone,omitempty"` // as Sample.Backbone
	Quality   float32   `json:"quality"`
	Time      time.Time `json:"time"`
	Camera    string    `json:"camera,omitempty"`
}

// BackboneID is the sample's backbone, LegacyBackbone when none was
// recorded.
func (s UnknownSample) BackboneID() string { return BackboneOf(s.Backbone) }

// UnknownID returns the id of unknown cluster number n.
func UnknownID(n uint64) string { return fmt.Sprintf("unknown-%d", n) }

// OutboxEvent is an event waiting to be published (the MQTT side drains the
// outbox and acknowledges each event once the broker has it).
type OutboxEvent struct {
	Seq     uint64    `json:"seq"`
	Topic   string    `json:"topic"` // relative to the device prefix, e.g. "events/recognized"
	Payload []byte    `json:"payload"`
	Camera  string    `json:"camera,omitempty"`
	Retain  bool      `json:"retain,omitempty"`
	Time    time.Time `json:"time"`
}

// Vectors are stored as little-endian float32 bytes (base64 inside JSON),
// not as JSON numbers: 4x smaller and exact.

// EncodeVector is the store's vector encoding, for other formats that carry
// the same vectors (fleet records).
func EncodeVector(v []float32) string { return encodeVec(v) }

// DecodeVector decodes EncodeVector's output; a malformed one wraps
// ErrCorrupt.
func DecodeVector(s string) ([]float32, error) { return decodeVec(s) }

func encodeVec(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeVec(s string) ([]float32, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%4 != 0 {
		return nil, fmt.Errorf("%w: bad vector encoding", ErrCorrupt)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// validEmbedding rejects empty vectors and non-finite values.
func validEmbedding(v []float32) error {
	if len(v) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidEmbedding)
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: element %d is %v", ErrInvalidEmbedding, i, x)
		}
	}
	return nil
}

type sampleJSON struct {
	Sample
	Vec string `json:"vec"`
}

func (s Sample) marshal() ([]byte, error) { return json.Marshal(sampleJSON{s, encodeVec(s.Embedding)}) }

func unmarshalSample(b []byte) (Sample, error) {
	var j sampleJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Sample{}, fmt.Errorf("%w: sample: %v", ErrCorrupt, err)
	}
	v, err := decodeVec(j.Vec)
	j.Sample.Embedding = v
	return j.Sample, err
}

type negativeJSON struct {
	Negative
	Vec string `json:"vec"`
}

func (n Negative) marshal() ([]byte, error) {
	return json.Marshal(negativeJSON{n, encodeVec(n.Embedding)})
}

func unmarshalNegative(b []byte) (Negative, error) {
	var j negativeJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Negative{}, fmt.Errorf("%w: negative: %v", ErrCorrupt, err)
	}
	v, err := decodeVec(j.Vec)
	j.Negative.Embedding = v
	return j.Negative, err
}

type clusterJSON struct {
	Cluster
	Vec string `json:"vec"`
}

type clustersJSON struct {
	Head     string        `json:"head"`
	Updated  time.Time     `json:"updated"`
	Clusters []clusterJSON `json:"clusters"`
}

func (c Clusters) marshal() ([]byte, error) {
	j := clustersJSON{Head: c.Head, Updated: c.Updated}
	for _, cl := range c.Clusters {
		j.Clusters = append(j.Clusters, clusterJSON{cl, encodeVec(cl.Centroid)})
	}
	return json.Marshal(j)
}

func unmarshalClusters(b []byte) (Clusters, error) {
	var j clustersJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Clusters{}, fmt.Errorf("%w: clusters: %v", ErrCorrupt, err)
	}
	c := Clusters{Head: j.Head, Updated: j.Updated}
	for _, cj := range j.Clusters {
		v, err := decodeVec(cj.Vec)
		if err != nil {
			return Clusters{}, err
		}
		cl := cj.Cluster
		cl.Centroid = v
		c.Clusters = append(c.Clusters, cl)
	}
	return c, nil
}

type unknownSampleJSON struct {
	UnknownSample
	Vec string `json:"vec"`
}

type unknownJSON struct {
	Unknown
	Vec     string              `json:"vec"`
	Samples []unknownSampleJSON `json:"samples"`
}

func (u Unknown) marshal() ([]byte, error) {
	j := unknownJSON{Unknown: u, Vec: encodeVec(u.Centroid)}
	j.Unknown.Samples = nil
	for _, s := range u.Samples {
		j.Samples = append(j.Samples, unknownSampleJSON{s, encodeVec(s.Embedding)})
	}
	return json.Marshal(j)
}

func unmarshalUnknown(b []byte) (Unknown, error) {
	var j unknownJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Unknown{}, fmt.Errorf("%w: unknown cluster: %v", ErrCorrupt, err)
	}
	u := j.Unknown
	var err error
	if u.Centroid, err = decodeVec(j.Vec); err != nil {
		return Unknown{}, err
	}
	u.Samples = nil
	for _, sj := range j.Samples {
		s := sj.UnknownSample
		if s.Embedding, err = decodeVec(sj.Vec); err != nil {
			return Unknown{}, err
		}
		u.Samples = append(u.Samples, s)
	}
	return u, nil
}

// Kinds of staged vectors.
const (
	StagedSample   = "s"
	StagedNegative = "n"
)

// StagedVector is a stored sample's or negative's vector re-computed by
// another backbone and waiting for the switch (package enroll's Reembed):
// it replaces the item's Embedding only when every item is staged, so the
// stored vectors never mix backbones for longer than the switch.
type StagedVector struct {
	Kind      string    `json:"kind"` // StagedSample or StagedNegative
	PersonID  string    `json:"person_id"`
	ItemID    string    `json:"item_id"` // the sample's or negative's id
	Backbone  string    `json:"backbone"`
	Embedding []float32 `json:"-"`
}

// ReembedState records a re-embedding in progress (m/reembed), so that a
// restart knows to finish it.
type ReembedState struct {
	// Target is the backbone the stored vectors are being moved to.
	Target  string    `json:"target"`
	Started time.Time `json:"started"`
}

type stagedJSON struct {
	StagedVector
	Vec string `json:"vec"`
}

func (v StagedVector) marshal() ([]byte, error) {
	return json.Marshal(stagedJSON{v, encodeVec(v.Embedding)})
}

func unmarshalStaged(b []byte) (StagedVector, error) {
	var j stagedJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return StagedVector{}, fmt.Errorf("%w: staged vector: %v", ErrCorrupt, err)
	}
	v, err := decodeVec(j.Vec)
	j.StagedVector.Embedding = v
	return j.StagedVector, err
}
