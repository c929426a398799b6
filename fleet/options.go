package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/edged-dev/edged/internal/metrics"
	"github.com/edged-dev/edged/store"
)

// Transport is the MQTT connection the fleet publishes and subscribes
// through: the daemon's own client (mqtt.Client has both methods), or a
// PahoTransport of its own.
type Transport interface {
	// Publish sends payload on topic with QoS 1 (retained when asked) and
	// returns once the broker acknowledged it, or with an error (not
	// connected, timed out). The fleet retries failed publishes itself.
	Publish(topic string, payload []byte, retained bool) error
	// Subscribe registers fn for the messages on filter (QoS 1), now and
	// after every reconnection (the broker then sends the retained records
	// again). fn is called from the client's receive path: the fleet only
	// queues the message and returns.
	Subscribe(filter string, fn func(topic string, payload []byte)) error
}

// ConnectNotifier is an optional Transport ability: fn runs after every
// (re)connection, so the fleet retries its pending publishes at once
// instead of at its next backoff tick.
type ConnectNotifier interface {
	OnConnect(fn func())
}

// Reembedder computes this device's embeddings of face crops (PNG, the face
// aligned to face.CropTemplate, as store.Images.Crop): one vector per crop,
// or an error for the batch. The daemon passes its embedder behind
// ChipFromCrop, as enroll.Reembed does.
type Reembedder func(ctx context.Context, crops [][]byte) ([][]float32, error)

// Options configure a Sync. Zero fields take the documented defaults; Name,
// Device, Backbone, Store and Transport are required.
type Options struct {
	// Name is the fleet's name (config fleet.name): devices with the same
	// name on one broker, or on bridged brokers, share their people.
	// Letters, digits, '-', '_' and '.', at most 64 bytes.
	Name string `yaml:"name"`
	// Device is this device's id (config device): it tags every change
	// this device makes and names its member record. Unique in the fleet.
	Device string `yaml:"-"`
	// Prefix is the topic prefix (mqtt.topic_prefix); default "edged".
	// Records live on <Prefix>/fleet/<Name>/...
	Prefix string `yaml:"-"`
	// Backbone is the id of the local backbone (model.backbone): only
	// embeddings of this backbone reach the local store.
	Backbone string `yaml:"-"`
	// Version is edged's version, shown in the member record.
	Version string `yaml:"-"`
	// Store is the device's store: the source of its own truth. The fleet
	// keeps its state in the store's fleet key space, so a local change,
	// its record and its publish queue entry commit together.
	Store *store.Store `yaml:"-"`
	// Transport is the broker connection.
	Transport Transport `yaml:"-"`

	// Key is the fleet key (config fleet.key_file, see LoadKey): 32 bytes,
	// or nil for plaintext records. With a key every record is sealed with
	// AES-256-GCM and records that do not authenticate are refused.
	Key []byte `yaml:"-"`
	// ShareCrops publishes the face crops of this device's samples (config
	// fleet.share_crops), so that devices with another backbone can
	// re-embed them, and re-embeds other devices' shared crops when their
	// backbone differs. Default false: embeddings only.
	ShareCrops bool `yaml:"share_crops"`
	// KeepCrops stores the crops this device re-embedded with their
	// samples (config store.keep_crops), so that a later local backbone
	// change can re-embed them too.
	KeepCrops bool `yaml:"-"`
	// Reembed computes this device's embeddings of shared crops. nil: a
	// record of another backbone is reported (once per person) and left
	// out, as when crops are not shared.
	Reembed Reembedder `yaml:"-"`

	// OnChange is called, from the fleet's worker goroutine and after the
	// store committed, with the changes another device's records made to
	// local people: reload them into the gallery (enroll.Enroller.Refresh).
	OnChange func([]Change) `yaml:"-"`
	// Events, when set, returns the outbox events to append for a change
	// from another device, in the transaction that applies it (so the
	// "fleet_sync" event is durable exactly when the change is).
	// SyncEvent builds the standard one.
	Events func(Change) []store.OutboxEvent `yaml:"-"`

	// TombstoneTTL is how long deletes are remembered (config
	// fleet.tombstone_ttl). A device away from the broker for longer may
	// bring back what was deleted meanwhile. Default 30 days.
	TombstoneTTL time.Duration `yaml:"tombstone_ttl"`
	// MaxClockSkew refuses records whose clock is this far ahead of the
	// local one (a device with a wrong clock). Default 1h.
	MaxClockSkew time.Duration `yaml:"-"`
	// MaxRecordBytes caps a record's payload, received or published
	// (config fleet.max_record_bytes). Default 1 MiB: a person with 64
	// samples of both backbones (192-d and 128-d) takes about 130 KB.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// MaxSamples caps a person's samples (config fleet.max_samples): beyond
	// it the oldest are removed everywhere. Default 64 (an enrollment
	// takes at most 64 images). MaxNegatives is the same for "not X"
	// samples, default 64.
	MaxSamples   int `yaml:"max_samples"`
	MaxNegatives int `yaml:"-"`
	// MaxTombs caps the sample tombstones a record may carry; default 1024.
	MaxTombs int `yaml:"-"`

	// ReconcileInterval is how often every local person is compared with
	// its record (catching changes the daemon did not report with
	// Changed). Default 10m.
	ReconcileInterval time.Duration `yaml:"-"`
	// MemberInterval is how often the member record is refreshed.
	// Default 1m.
	MemberInterval time.Duration `yaml:"-"`
	// RetryMin and RetryMax bound the backoff of failed publishes.
	// Defaults 500ms and 30s.
	RetryMin, RetryMax time.Duration `yaml:"-"`
	// InboxBytes caps the received payloads waiting to be applied; beyond
	// it only the latest copy per topic is kept (the broker's retained
	// copy converges on the merge of all). Default 64 MiB.
	InboxBytes int `yaml:"-"`

	// Metrics receives the edged_fleet_* series (nil: a private registry).
	Metrics *metrics.Registry `yaml:"-"`
	// Logger, default: discard.
	Logger *slog.Logger `yaml:"-"`
	// Now is the physical clock (tests); default time.Now.
	Now func() time.Time `yaml:"-"`
}

func (o *Options) fill() {
	if o.Prefix == "" {
		o.Prefix = "edged"
	}
	dur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	dur(&o.TombstoneTTL, 30*24*time.Hour)
	dur(&o.MaxClockSkew, time.Hour)
	dur(&o.ReconcileInterval, 10*time.Minute)
	dur(&o.MemberInterval, time.Minute)
	dur(&o.RetryMin, 500*time.Millisecond)
	dur(&o.RetryMax, 30*time.Second)
	num := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	num(&o.MaxRecordBytes, 1<<20)
	num(&o.MaxSamples, 64)
	num(&o.MaxNegatives, 64)
	num(&o.MaxTombs, 1024)
	num(&o.InboxBytes, 64<<20)
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewRegistry()
	}
}

func (o *Options) validate() error {
	switch {
	case !ValidName(o.Name):
		return fmt.Errorf("%w: name %q: letters, digits, '-', '_' and '.', at most 64", ErrOptions, o.Name)
	case !ValidName(o.Device):
		return fmt.Errorf("%w: device %q: letters, digits, '-', '_' and '.', at most 64", ErrOptions, o.Device)
	case !validSegment(o.Backbone):
		return fmt.Errorf("%w: backbone %q", ErrOptions, o.Backbone)
	case o.Store == nil:
		return fmt.Errorf("%w: no store", ErrOptions)
	case o.Transport == nil:
		return fmt.Errorf("%w: no transport", ErrOptions)
	case len(o.Key) != 0 && len(o.Key) != KeySize:
		return fmt.Errorf("%w (%w)", ErrBadKey, ErrOptions)
	case o.MaxRecordBytes < 4<<10:
		return fmt.Errorf("%w: max record bytes %d: want at least 4096", ErrOptions, o.MaxRecordBytes)
	}
	return nil
}

func (o *Options) limits() Limits {
	return Limits{
		MaxRecordBytes: o.MaxRecordBytes,
		MaxSamples:     o.MaxSamples,
		MaxNegatives:   o.MaxNegatives,
		MaxTombs:       o.MaxTombs,
		MaxDim:         4096,
		MaxVecs:        8,
	}
}

// Topics is the fleet's topic layout, under <prefix>/fleet/<name>.
type Topics struct {
	Base string // e.g. "edged/fleet/home"
}

// NewTopics returns the layout of fleet name under prefix.
func NewTopics(prefix, name string) Topics {
	if prefix == "" {
		prefix = "edged"
	}
	return Topics{Base: prefix + "/fleet/" + name}
}

// Person is the retained record topic of a person.
func (t Topics) Person(id string) string { return t.Base + "/people/" + id }

// People is the subscription filter of every person record.
func (t Topics) People() string { return t.Base + "/people/+" }

// Member is the retained member record topic of a device.
func (t Topics) Member(device string) string { return t.Base + "/members/" + device }

// Members is the subscription filter of every member record.
func (t Topics) Members() string { return t.Base + "/members/+" }

// Crop is the retained topic of a sample's shared face crop.
func (t Topics) Crop(person, sample string) string {
	return t.Base + "/crops/" + person + "/" + sample
}

// Crops is the subscription filter of every shared crop.
func (t Topics) Crops() string { return t.Base + "/crops/+/+" }

// parse splits a received topic into its kind ("people", "members",
// "crops") and the levels after it.
func (t Topics) parse(topic string) (kind string, rest []string, ok bool) {
	if len(topic) <= len(t.Base)+1 || topic[:len(t.Base)] != t.Base || topic[len(t.Base)] != '/' {
		return "", nil, false
	}
	parts := splitTopic(topic[len(t.Base)+1:])
	if len(parts) < 2 {
		return "", nil, false
	}
	return parts[0], parts[1:], true
}

func splitTopic(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
