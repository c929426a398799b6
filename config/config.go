package config

import (
	"fmt"
	"time"
)

// Config is the whole configuration of the daemon. Zero values in the file
// mean "the default"; Default() holds every default and docs/config.md
// documents them, with units.
type Config struct {
	// Device identifies this device in MQTT topics (edged/<device>/...) and
	// Home Assistant discovery. Default: the host name, made topic-safe.
	Device string `yaml:"device"`
	// DataDir holds the Badger store. Default: $STATE_DIRECTORY (systemd),
	// else ./edged-data.
	DataDir string `yaml:"data_dir"`
	// ModelDir holds the model files. Default: $EDGED_MODELS, then the
	// install layout <prefix>/share/edged/models.
	ModelDir string `yaml:"model_dir"`

	Model       Model       `yaml:"model"`
	Log         Log         `yaml:"log"`
	HTTP        HTTP        `yaml:"http"`
	MQTT        MQTT        `yaml:"mqtt"`
	Store       Store       `yaml:"store"`
	Detect      Detect      `yaml:"detect"`
	Recognition Recognition `yaml:"recognition"`
	Pipeline    Pipeline    `yaml:"pipeline"`
	Finetune    Finetune    `yaml:"finetune"`
	Fleet       Fleet       `yaml:"fleet"`
	Cameras     []Camera    `yaml:"cameras"`
}

// Model configures the embedding network.
type Model struct {
	// Backbone is the embedding network: mobilefacenet (default) or dlib.
	// Stored embeddings record theirs; after a change the daemon re-embeds
	// the gallery from the stored face crops before it matches anything.
	Backbone string `yaml:"backbone"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error (default info)
	Format string `yaml:"format"` // auto | text | json (default auto: json under systemd)
}

// HTTP configures the local HTTP listener: /metrics, /healthz and the web
// page (docs/web.md).
type HTTP struct {
	// Addr is the listen address of /metrics, /healthz and the web page;
	// "off" disables it. Default 127.0.0.1:9108 (loopback only). Any other
	// address requires Auth: the web page changes the gallery.
	Addr string `yaml:"addr"`
	// Auth protects the web page (and the listener's other paths). Empty:
	// no authentication, allowed on a loopback address only.
	Auth HTTPAuth `yaml:"auth"`
	// TLSCert and TLSKey (PEM files, together) serve HTTPS instead of
	// HTTP. Default empty: plain HTTP.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// HTTPAuth says how web users authenticate; either or both files may be
// set. Files rather than values keep the secrets out of this
// (world-readable) file.
type HTTPAuth struct {
	// PasswordFile holds "user:bcrypt-hash" lines (htpasswd -B): users
	// log in on the page's form and get a session cookie.
	PasswordFile string `yaml:"password_file"`
	// TokenFile holds one bearer token (at least 32 characters) for
	// scripts: "Authorization: Bearer <token>", or once on the login form.
	TokenFile string `yaml:"token_file"`
}

// Enabled reports whether any authentication is configured.
func (a HTTPAuth) Enabled() bool { return a.PasswordFile != "" || a.TokenFile != "" }

// MQTT configures the MQTT connection.
type MQTT struct {
	// Broker is the broker URL (tcp://, ssl://, ws://, wss://). Empty: edged
	// starts its embedded broker on Listen.
	Broker string `yaml:"broker"`
	// Listen is the embedded broker's address (default 127.0.0.1:1883).
	Listen          string        `yaml:"listen"`
	TopicPrefix     string        `yaml:"topic_prefix"` // default "edged"
	ClientID        string        `yaml:"client_id"`    // default edged-<device>
	Username        string        `yaml:"username"`     // env EDGED_MQTT_USERNAME
	Password        string        `yaml:"password"`     // env EDGED_MQTT_PASSWORD
	CAFile          string        `yaml:"ca_file"`
	CertFile        string        `yaml:"cert_file"`
	KeyFile         string        `yaml:"key_file"`
	KeepAlive       time.Duration `yaml:"keepalive"`        // default 30s
	Discovery       *bool         `yaml:"discovery"`        // Home Assistant discovery, default true
	DiscoveryPrefix string        `yaml:"discovery_prefix"` // default "homeassistant"
	MaxPayload      int           `yaml:"max_payload"`      // largest command accepted, bytes, default 16 MiB
	// DedupTTL is how long the first reply of a command with side effects
	// is kept, so that a repeat of the same (command, id) is answered with
	// it instead of running again (mqtt.Options.DedupTTL). Default 24h.
	DedupTTL time.Duration `yaml:"dedup_ttl"`
}

// Store configures the Badger store.
type Store struct {
	// KeyFile holds the encryption key (16, 24 or 32 bytes, raw or hex).
	// EDGED_STORE_KEY overrides it with the key itself. Empty and unset:
	// no encryption.
	KeyFile string `yaml:"key_file"`
	// Key is only ever set from EDGED_STORE_KEY, never from the file.
	Key string `yaml:"-"`
	// SaveChips keeps the face chips of samples (privacy: off by default).
	SaveChips bool `yaml:"save_chips"`
	// KeepCrops keeps each sample's aligned face crop (184x184 PNG, about
	// 50 KB; encrypted with the store), from which any backbone's chip can
	// be cut again: what lets a gallery survive a change of model.backbone
	// without re-enrolling. Default true; false saves the space and means
	// re-enrolling everyone after a backbone change.
	KeepCrops *bool `yaml:"keep_crops"`
	// GCInterval is the value-log GC period (default 10m).
	GCInterval time.Duration `yaml:"gc_interval"`
	// MinFreeMB is the free space (MiB) the data directory's filesystem must
	// keep: below it the store refuses writes with a clear error instead of
	// letting Badger's memory-mapped files hit a full disk (which would kill
	// the process). Default 128; 0 turns the check off (not recommended).
	MinFreeMB int `yaml:"min_free_mb"`
	// OutboxMaxMB bounds the outbox (events waiting for the broker), MiB:
	// past it the oldest events are dropped, counted and logged once per
	// outage (store.Options.OutboxMaxBytes). Default 64; 0: no bound.
	OutboxMaxMB int `yaml:"outbox_max_mb"`
	// OutboxMaxAge drops events that waited longer (store.Options.
	// OutboxMaxAge). Default 168h (7 days); 0: no bound.
	OutboxMaxAge time.Duration `yaml:"outbox_max_age"`
}

// MinFreeBytes maps store.min_free_mb onto store.Options.MinFreeBytes. The
// configuration's 0 turns the check off, which store.Options spells as a
// negative value (its own 0 means the store's default).
func (s Store) MinFreeBytes() int64 {
	if s.MinFreeMB == 0 {
		return -1
	}
	return int64(s.MinFreeMB) << 20
}

// OutboxMaxBytes maps store.outbox_max_mb onto store.Options.OutboxMaxBytes
// (0 there means the default, negative no bound).
func (s Store) OutboxMaxBytes() int64 {
	if s.OutboxMaxMB == 0 {
		return -1
	}
	return int64(s.OutboxMaxMB) << 20
}

// OutboxMaxAgeOption maps store.outbox_max_age onto
// store.Options.OutboxMaxAge (0 there means the default, negative no bound).
func (s Store) OutboxMaxAgeOption() time.Duration {
	if s.OutboxMaxAge == 0 {
		return -1
	}
	return s.OutboxMaxAge
}

// Detect configures face detection. Cameras can override MinFaceSize and
// ScoreThreshold.
type Detect struct {
	Backend        string  `yaml:"backend"`         // dnn | haar (default dnn)
	ScoreThreshold float64 `yaml:"score_threshold"` // 0..1, default 0.7
	NMSThreshold   float64 `yaml:"nms_threshold"`   // IoU, 0..1, default 0.3
	MinFaceSize    int     `yaml:"min_face_size"`   // pixels, default 40
	MaxFaceSize    int     `yaml:"max_face_size"`   // pixels, 0 = no limit
}

// Recognition configures matching and the per-track decision.
type Recognition struct {
	// Threshold is the largest distance accepted as a match; 0 uses the
	// gallery's calibrated default. Cameras can override it.
	Threshold float64 `yaml:"threshold"`
	// Margin is how much nearer the best person must be than the second;
	// 0 uses the gallery's default.
	Margin float64 `yaml:"margin"`
	// MinQuality is the face quality (0..1) below which a face is tracked
	// but not embedded. Default 0.3.
	MinQuality float64 `yaml:"min_quality"`
	// Decide is how many embedded faces a track collects before it is
	// decided (default 3).
	Decide int `yaml:"decide"`
	// MaxEmbeds is how many faces an undecided track embeds at most before
	// it is reported unknown (default 10).
	MaxEmbeds int `yaml:"max_embeds"`
	// Recheck is how often a decided track embeds one face to confirm its
	// identity (default 2s).
	Recheck time.Duration `yaml:"recheck"`
	// TrackTimeout ends a track not seen for this long (default 2s).
	TrackTimeout time.Duration `yaml:"track_timeout"`
	// UnknownClusters groups unknown faces into unknown-N identities
	// (default true).
	UnknownClusters *bool `yaml:"unknown_clusters"`
	// UnknownMax bounds the unknown-N identities: a new one past it evicts
	// the one seen least recently, with its faces (gallery.UnknownOptions.
	// Max). Default 1000; 0: no bound.
	UnknownMax int `yaml:"unknown_max"`
	// UnknownTTL forgets an unknown-N identity not seen for this long: it
	// is not loaded, not trained on, and deleted with its faces. Default
	// 720h (30 days); 0: never.
	UnknownTTL time.Duration `yaml:"unknown_ttl"`
	// Experience keeps device experience (default true): the frames of
	// tracks recognised with high confidence become in-domain faces of
	// that person (their own gallery clusters; the fine-tune pairs them
	// with the enrollment photos). service.ExperienceOptions.
	Experience *bool `yaml:"experience"`
	// ExperienceMinConfidence is the decision confidence (0..1) a track
	// needs to label itself. Default 0.9.
	ExperienceMinConfidence float64 `yaml:"experience_min_confidence"`
	// ExperienceMaxPerPerson and ExperienceMaxTotal bound the experience
	// faces kept (least recently seen out first). Defaults 60 and 3000.
	ExperienceMaxPerPerson int `yaml:"experience_max_per_person"`
	ExperienceMaxTotal     int `yaml:"experience_max_total"`
}

// ExperienceOn reports whether recognition.experience is on (default).
func (r Recognition) ExperienceOn() bool { return r.Experience == nil || *r.Experience }

// UnknownBounds maps recognition.unknown_max and unknown_ttl onto
// gallery.UnknownOptions.Max and MaxAge (and finetune.JobOptions.
// UnknownMaxAge), where 0 means the default and negative no bound.
func (r Recognition) UnknownBounds() (max int, maxAge time.Duration) {
	max, maxAge = r.UnknownMax, r.UnknownTTL
	if max == 0 {
		max = -1
	}
	if maxAge == 0 {
		maxAge = -1
	}
	return max, maxAge
}

// Pipeline configures queues and batching.
type Pipeline struct {
	FaceQueue  int           `yaml:"face_queue"`  // frames with faces between detection and recognition, default 4
	EventQueue int           `yaml:"event_queue"` // events between cameras and the outbox, default 256
	EmbedBatch int           `yaml:"embed_batch"` // most chips per embedding run, default 16
	EmbedWait  time.Duration `yaml:"embed_wait"`  // how long a batch waits for more chips, default 5ms
}

// Finetune configures the background fine-tune after enrollments.
type Finetune struct {
	Enabled  *bool         `yaml:"enabled"`  // default true
	Debounce time.Duration `yaml:"debounce"` // quiet time after the last enrollment, default 30s
}

// Fleet configures sharing people with the other edged devices of a
// fleet through the MQTT broker (docs/fleet.md). Off unless Name is set.
type Fleet struct {
	// Name joins the fleet of that name (also `edged run --fleet NAME`):
	// devices with the same name on one broker, or on bridged brokers,
	// share their people. Empty (the default): off.
	Name string `yaml:"name"`
	// KeyFile holds the fleet key, 32 bytes raw or 64 hex digits, the same
	// on every device: records are then encrypted and authenticated
	// (AES-256-GCM). Empty: plaintext records (rely on broker ACLs).
	KeyFile string `yaml:"key_file"`
	// ShareCrops publishes the face crops of enrolled samples, so that
	// devices with another model.backbone can re-embed them, and
	// re-embeds the crops others share. Default false: embeddings only.
	ShareCrops bool `yaml:"share_crops"`
	// TombstoneTTL is how long deletes are remembered (a device away
	// longer may bring deleted people back). Default 720h (30 days).
	TombstoneTTL time.Duration `yaml:"tombstone_ttl"`
	// MaxSamples caps a person's samples in the fleet (the oldest are
	// removed beyond it). Default 64.
	MaxSamples int `yaml:"max_samples"`
	// MaxRecordBytes is the largest person record accepted or published,
	// in bytes. Default 1048576 (1 MiB).
	MaxRecordBytes int `yaml:"max_record_bytes"`
}

// FleetEnabled reports whether the device joins a fleet (fleet.name).
func (c *Config) FleetEnabled() bool { return c.Fleet.Name != "" }

// Camera is one video source. The override fields are nil when the camera
// uses the global value; Config.Camera resolves them.
type Camera struct {
	// Name identifies the camera in events and topics; default cam<N>.
	Name string `yaml:"name"`
	// URL: a device path or index (/dev/video0, 0), an RTSP/HTTP URL, a
	// video file, an image folder or glob, or gst:PIPELINE.
	URL     string `yaml:"url"`
	Enabled *bool  `yaml:"enabled"` // default true
	// FPS caps the frames processed per second; 0 = the source's rate.
	FPS    float64 `yaml:"fps"`
	Width  int     `yaml:"width"`  // requested capture width (devices), pixels, 0 = driver default
	Height int     `yaml:"height"` // requested capture height, pixels
	// Loop restarts a video file or image folder at its end (demos, tests);
	// without it a file camera stops at the end.
	Loop bool `yaml:"loop"`

	Threshold      *float64 `yaml:"threshold"`       // overrides recognition.threshold
	MinFaceSize    *int     `yaml:"min_face_size"`   // overrides detect.min_face_size
	ScoreThreshold *float64 `yaml:"score_threshold"` // overrides detect.score_threshold
	MinQuality     *float64 `yaml:"min_quality"`     // overrides recognition.min_quality
}

// CameraSettings is one camera with every override resolved.
type CameraSettings struct {
	Name           string
	URL            string
	FPS            float64
	Width, Height  int
	Loop           bool
	Threshold      float64
	MinFaceSize    int
	ScoreThreshold float64
	MinQuality     float64
}

// Default returns the configuration with every default filled in and no
// camera.
func Default() Config {
	// Each pointer gets its own bool: the YAML decoder writes through an
	// existing pointer, so a shared one would turn every default off when
	// the file turns one off.
	yes := func() *bool { t := true; return &t }
	return Config{
		Log:  Log{Level: "info", Format: "auto"},
		HTTP: HTTP{Addr: "127.0.0.1:9108"},
		MQTT: MQTT{
			Listen:          "127.0.0.1:1883",
			TopicPrefix:     "edged",
			KeepAlive:       30 * time.Second,
			Discovery:       yes(),
			DiscoveryPrefix: "homeassistant",
			MaxPayload:      16 << 20,
			DedupTTL:        24 * time.Hour,
		},
		Model: Model{Backbone: "mobilefacenet"},
		Store: Store{GCInterval: 10 * time.Minute, MinFreeMB: 128, KeepCrops: yes(),
			OutboxMaxMB: 64, OutboxMaxAge: 7 * 24 * time.Hour},
		Detect: Detect{Backend: "dnn", ScoreThreshold: 0.7, NMSThreshold: 0.3, MinFaceSize: 40},
		Recognition: Recognition{
			MinQuality:      0.3,
			Decide:          3,
			MaxEmbeds:       10,
			Recheck:         2 * time.Second,
			TrackTimeout:    2 * time.Second,
			UnknownClusters: yes(),
			UnknownMax:      1000,
			UnknownTTL:      30 * 24 * time.Hour,
			Experience:      yes(),
			// service.DefaultExperience* (config stays free of service).
			ExperienceMinConfidence: 0.9,
			ExperienceMaxPerPerson:  60,
			ExperienceMaxTotal:      3000,
		},
		Pipeline: Pipeline{FaceQueue: 4, EventQueue: 256, EmbedBatch: 16, EmbedWait: 5 * time.Millisecond},
		Finetune: Finetune{Enabled: yes(), Debounce: 30 * time.Second},
		Fleet:    Fleet{TombstoneTTL: 720 * time.Hour, MaxSamples: 64, MaxRecordBytes: 1 << 20},
	}
}

// Camera returns camera i with the global detection and recognition
// settings filled in where it does not override them.
func (c *Config) Camera(i int) CameraSettings {
	cam := c.Cameras[i]
	s := CameraSettings{
		Name: cam.Name, URL: cam.URL, FPS: cam.FPS, Width: cam.Width, Height: cam.Height, Loop: cam.Loop,
		Threshold:      c.Recognition.Threshold,
		MinFaceSize:    c.Detect.MinFaceSize,
		ScoreThreshold: c.Detect.ScoreThreshold,
		MinQuality:     c.Recognition.MinQuality,
	}
	if cam.Threshold != nil {
		s.Threshold = *cam.Threshold
	}
	if cam.MinFaceSize != nil {
		s.MinFaceSize = *cam.MinFaceSize
	}
	if cam.ScoreThreshold != nil {
		s.ScoreThreshold = *cam.ScoreThreshold
	}
	if cam.MinQuality != nil {
		s.MinQuality = *cam.MinQuality
	}
	return s
}

// EnabledCameras returns the resolved settings of every enabled camera.
func (c *Config) EnabledCameras() []CameraSettings {
	var out []CameraSettings
	for i, cam := range c.Cameras {
		if cam.Enabled == nil || *cam.Enabled {
			out = append(out, c.Camera(i))
		}
	}
	return out
}

// KeepCropsEnabled reports store.keep_crops (default true).
func (c *Config) KeepCropsEnabled() bool { return c.Store.KeepCrops == nil || *c.Store.KeepCrops }

// DiscoveryEnabled reports mqtt.discovery (default true).
func (c *Config) DiscoveryEnabled() bool { return c.MQTT.Discovery == nil || *c.MQTT.Discovery }

// FinetuneEnabled reports finetune.enabled (default true).
func (c *Config) FinetuneEnabled() bool { return c.Finetune.Enabled == nil || *c.Finetune.Enabled }

// UnknownClustersEnabled reports recognition.unknown_clusters (default true).
func (c *Config) UnknownClustersEnabled() bool {
	return c.Recognition.UnknownClusters == nil || *c.Recognition.UnknownClusters
}

// HTTPEnabled reports whether the HTTP listener should listen.
func (c *Config) HTTPEnabled() bool { return c.HTTP.Addr != "" && c.HTTP.Addr != "off" }

func sprintf(format string, a ...any) string {
	if len(a) == 0 {
		return format
	}
	return fmt.Sprintf(format, a...)
}
