package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Options configure a Client. Zero fields take the documented defaults
// (New fills them in); Broker is the only required field.
type Options struct {
	// Broker URL: tcp://host:1883 (also mqtt://), ssl://host:8883 (also
	// tls://, mqtts://), ws://host/path or wss://host/path. Required; when
	// the user configures none, the daemon starts the embedded broker
	// (StartBroker) and passes its URL and credentials.
	Broker string `yaml:"broker"`
	// ClientID; default "edged-<device>". Must be unique on the broker.
	ClientID string `yaml:"client_id"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TLS for ssl://, tls://, mqtts:// and wss:// URLs. CAFile: PEM bundle
	// to verify the broker (default: the system roots). CertFile + KeyFile:
	// client certificate (PEM) for brokers that require one.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`

	// Topic layout: everything lives under "<Prefix>/<Device>/".
	Prefix string `yaml:"prefix"` // default "edged"
	Device string `yaml:"device"` // default: the host name (made topic-safe)

	KeepAlive      time.Duration `yaml:"keep_alive"`      // default 30s
	ConnectTimeout time.Duration `yaml:"connect_timeout"` // default 10s
	BackoffMin     time.Duration `yaml:"backoff_min"`     // first reconnect delay; default 500ms
	BackoffMax     time.Duration `yaml:"backoff_max"`     // reconnect delay cap (doubles with jitter); default 30s
	PublishTimeout time.Duration `yaml:"publish_timeout"` // wait for PUBACK before reconnecting; default 30s
	MaxInflight    int           `yaml:"max_inflight"`    // events sent before waiting for their PUBACK; default 16
	MaxEventBytes  int           `yaml:"max_event_bytes"` // larger events are dropped with an error log; default 1 MiB
	PollInterval   time.Duration `yaml:"poll_interval"`   // outbox re-check without Notify; default 2s
	DrainTimeout   time.Duration `yaml:"drain_timeout"`   // Close waits this long for the outbox and running commands; default 5s

	Workers        int           `yaml:"workers"`         // command workers; default 1 (commands run in order)
	QueueSize      int           `yaml:"queue_size"`      // commands waiting for a worker; more are answered "busy"; default 16
	CommandTimeout time.Duration `yaml:"command_timeout"` // per command; default 2m
	// DedupTTL is how long the first reply of a command with side effects
	// (Router.HandleOnce) is kept to answer a repeat of the same (command,
	// id) without running it again. Default 24h: longer than any client
	// retries, short enough that ids may be reused the next day.
	DedupTTL time.Duration `yaml:"dedup_ttl"`
	// Dedup keeps those replies. Default: NewMemCommandLog (not durable);
	// the daemon passes the store's, so a repeat after a restart is
	// recognised too.
	Dedup CommandLog `yaml:"-"`

	HomeAssistant HomeAssistantOptions `yaml:"home_assistant"`

	Version string       `yaml:"-"` // edged's version, for discovery and logs
	Logger  *slog.Logger `yaml:"-"` // default: discard
}

// HomeAssistantOptions configure Home Assistant MQTT discovery.
type HomeAssistantOptions struct {
	Disabled bool     `yaml:"disabled"` // discovery is on by default
	Prefix   string   `yaml:"prefix"`   // discovery prefix; default "homeassistant"
	Name     string   `yaml:"name"`     // device name in Home Assistant; default "edged <device>"
	Cameras  []string `yaml:"cameras"`  // cameras to announce sensors for (also Client.SetCameras)
}

var unsafeDevice = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// DefaultDevice is the host name made topic-safe ("edge").
func DefaultDevice() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "edge"
	}
	h, _, _ = strings.Cut(h, ".")
	h = strings.Trim(unsafeDevice.ReplaceAllString(h, "-"), "-")
	if h == "" {
		return "edge"
	}
	return h
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Device == "" {
		o.Device = DefaultDevice()
	}
	if o.ClientID == "" {
		o.ClientID = "edged-" + o.Device
	}
	dur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	dur(&o.KeepAlive, 30*time.Second)
	dur(&o.ConnectTimeout, 10*time.Second)
	dur(&o.BackoffMin, 500*time.Millisecond)
	dur(&o.BackoffMax, 30*time.Second)
	dur(&o.PublishTimeout, 30*time.Second)
	dur(&o.PollInterval, 2*time.Second)
	dur(&o.DrainTimeout, 5*time.Second)
	dur(&o.CommandTimeout, 2*time.Minute)
	dur(&o.DedupTTL, 24*time.Hour)
	if o.Dedup == nil {
		o.Dedup = NewMemCommandLog(0)
	}
	num := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	num(&o.MaxInflight, 16)
	num(&o.MaxEventBytes, 1<<20)
	num(&o.Workers, 1)
	num(&o.QueueSize, 16)
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.HomeAssistant.Prefix == "" {
		o.HomeAssistant.Prefix = DefaultDiscoveryPrefix
	}
	if o.HomeAssistant.Name == "" {
		o.HomeAssistant.Name = "edged " + o.Device
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// validate lists every problem at once.
func (o Options) validate() error {
	var errs []error
	u, err := url.Parse(o.Broker)
	switch {
	case o.Broker == "":
		errs = append(errs, errors.New("broker: required (e.g. tcp://localhost:1883)"))
	case err != nil:
		errs = append(errs, fmt.Errorf("broker: %v", err))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("broker %q: no host", o.Broker))
	case !isTLSScheme(u.Scheme) && !isPlainScheme(u.Scheme):
		errs = append(errs, fmt.Errorf("broker %q: scheme must be tcp, mqtt, ssl, tls, mqtts, ws or wss", o.Broker))
	case !isTLSScheme(u.Scheme) && (o.CAFile != "" || o.CertFile != ""):
		errs = append(errs, fmt.Errorf("broker %q: ca_file/cert_file need a TLS URL (ssl://, mqtts:// or wss://)", o.Broker))
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, errors.New("cert_file and key_file: give both or neither"))
	}
	if o.Password != "" && o.Username == "" {
		errs = append(errs, errors.New("password: set without username"))
	}
	if _, err := NewTopics(o.Prefix, o.Device); err != nil {
		errs = append(errs, err)
	}
	if err := CheckSegment(o.HomeAssistant.Prefix); err != nil {
		errs = append(errs, fmt.Errorf("home_assistant.prefix: %w", err))
	}
	for _, c := range o.HomeAssistant.Cameras {
		if err := CheckSegment(c); err != nil {
			errs = append(errs, fmt.Errorf("home_assistant.cameras %q: %w", c, err))
		}
	}
	if len(o.ClientID) > 128 {
		errs = append(errs, errors.New("client_id: longer than 128 bytes"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrOptions, err)
	}
	return nil
}

func isTLSScheme(s string) bool {
	return s == "ssl" || s == "tls" || s == "mqtts" || s == "wss" || s == "tcps"
}

func isPlainScheme(s string) bool { return s == "tcp" || s == "mqtt" || s == "ws" }

// tlsConfig builds the TLS configuration from the files (nil for plain
// URLs).
func (o Options) tlsConfig() (*tls.Config, error) {
	u, _ := url.Parse(o.Broker)
	if !isTLSScheme(u.Scheme) {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: ca_file: %w", ErrOptions, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: ca_file %q: no PEM certificate", ErrOptions, o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: cert_file/key_file: %w", ErrOptions, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
