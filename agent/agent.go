package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/internal/sdnotify"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/service"
)

// Options configure a Daemon.
type Options struct {
	Config     config.Config
	ConfigFile string // for the log
	// Load reads the configuration again (SIGHUP); nil: reloads are refused.
	Load     func() (config.Config, error)
	DataDir  string
	ModelDir string
	Logger   *slog.Logger
	Level    *slog.LevelVar // the logger's level, set again on reload
	Debug    bool           // debug logging whatever the configuration says
	Version  string
	Started  time.Time // the process start, for the start-to-ready time
}

// New returns the daemon of `edged run`.
func New(o Options) *Daemon {
	return &Daemon{load: o.Load, debug: o.Debug, cfg: o.Config, cfgFile: o.ConfigFile, dataDir: o.DataDir, modelDir: o.ModelDir,
		log: o.Logger, level: o.Level, version: o.Version, started: o.Started}
}

// Daemon is one `edged run`.
type Daemon struct {
	load     func() (config.Config, error)
	debug    bool
	cfg      config.Config
	cfgFile  string
	dataDir  string
	modelDir string
	log      *slog.Logger
	level    *slog.LevelVar
	version  string
	started  time.Time

	c      *Core
	pipe   *pipeline.Pipeline
	broker *mqtt.Broker
	client *mqtt.Client
	outbox *service.StoreOutbox
	http   *httpServer
	ft     *finetuner

	mu     sync.Mutex
	chains map[string]*pipeline.Chain
	ready  bool
}

// Run starts the daemon and serves until ctx ends.
func (d *Daemon) Run(ctx context.Context) (err error) {
	log := d.log
	log.Info("edged starting", "version", d.version, "device", d.cfg.Device, "data", d.dataDir, "config", d.cfgFile)
	_ = sdnotify.Status("starting")
	defer func() {
		if err != nil {
			_ = sdnotify.Status("failed: " + err.Error())
		}
	}()

	// The embedded broker first: clients can connect while models load.
	if d.cfg.MQTT.Broker == "" {
		d.broker, err = mqtt.StartBrokerWith(mqtt.BrokerOptions{Addr: d.cfg.MQTT.Listen, Prefix: d.cfg.MQTT.TopicPrefix,
			MaxPacketSize: uint32(d.cfg.MQTT.MaxPayload) + 4096, Logger: d.brokerLog()})
		if err != nil {
			return startup(fmt.Errorf("embedded broker: %w", err))
		}
		defer d.broker.Close()
	}

	enabled := d.cfg.EnabledCameras()
	d.c, err = OpenCore(d.cfg, log, CoreOptions{DataDir: d.dataDir, ModelDir: d.modelDir, DetectWorkers: min(max(len(enabled), 1), 2), Version: d.version})
	if err != nil {
		return err
	}
	defer d.c.Close()
	d.registerMetrics()

	// Pipeline: the outbox output (and the log) consume every camera.
	d.outbox = service.NewStoreOutbox(d.c.st)
	d.pipe = pipeline.New(pipeline.Options{Queue: d.cfg.Pipeline.FaceQueue, EventQueue: d.cfg.Pipeline.EventQueue,
		Logger: log, Metrics: d.c.reg},
		service.NewOutboxOutput(d.c.st, d.c.svc, log), pipeline.LogOutput{Log: log.With("component", "events")})
	if err := d.pipe.Start(); err != nil {
		return err
	}
	d.c.mu.Lock()
	d.c.pipe = d.pipe
	d.c.mu.Unlock()

	// Background work: store GC, fine-tune.
	bg, stopBG := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	defer func() { stopBG(); bgWG.Wait() }()
	bgWG.Add(1)
	go func() { defer bgWG.Done(); _ = d.c.st.RunGC(bg) }()
	if d.cfg.FinetuneEnabled() {
		d.ft = newFinetuner(d.c, d.cfg.Finetune.Debounce, log)
		d.c.svc.SetFinetuner(d.ft)
		bgWG.Add(1)
		go func() { defer bgWG.Done(); d.ft.Run(bg) }()
	}

	// MQTT client: publishes the outbox, serves the commands.
	if err := d.startMQTT(); err != nil {
		d.pipe.Close()
		return err
	}

	if d.cfg.HTTPEnabled() {
		if d.http, err = startHTTP(d.cfg.HTTP.Addr, d.c.reg, d.health, log); err != nil {
			d.shutdown()
			return err
		}
	}

	d.chains = map[string]*pipeline.Chain{}
	d.startCameras(ctx, d.cfg)
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	ready := time.Since(d.started)
	d.c.reg.GaugeFunc("edged_startup_seconds", "Time from process start to ready (pipeline running).", nil,
		func(emit func(float64, ...string)) { emit(ready.Seconds()) })
	log.Info("ready", "startup", ready.Round(time.Millisecond), "cameras", len(d.chains), "mqtt", d.brokerURL())
	_ = sdnotify.Ready()
	_ = sdnotify.Status(d.statusLine())

	wdCtx, stopWD := context.WithCancel(context.Background())
	go sdnotify.Watchdog(wdCtx, d.pipe.Healthy)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			d.reload(ctx)
			continue
		case <-ctx.Done():
		}
		break
	}
	stopWD()
	log.Info("stopping")
	_ = sdnotify.Stopping()
	d.shutdown()
	log.Info("stopped")
	return nil
}

// brokerLog is the embedded broker's logger: warnings and errors only,
// unless --debug.
func (d *Daemon) brokerLog() *slog.Logger {
	if d.debug {
		return d.log
	}
	return slog.New(minLevel{d.log.Handler(), slog.LevelWarn})
}

func (d *Daemon) brokerURL() string {
	if d.broker != nil {
		return "embedded " + d.broker.URL()
	}
	return Redact(d.cfg.MQTT.Broker)
}

// Redact hides the credentials of the URLs in u.
func Redact(u string) string { return urlPattern.ReplaceAllStringFunc(u, redactUserinfo) }

func redactUserinfo(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.LastIndex(u, "@"); at > i {
			return u[:i+3] + "***@" + u[at+1:]
		}
	}
	return u
}

func (d *Daemon) startMQTT() error {
	cfg := d.cfg
	names := cameraNames(cfg.EnabledCameras())
	opts := mqtt.Options{
		Broker: cfg.MQTT.Broker, ClientID: cfg.MQTT.ClientID, Username: cfg.MQTT.Username, Password: cfg.MQTT.Password,
		CAFile: cfg.MQTT.CAFile, CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile,
		Prefix: cfg.MQTT.TopicPrefix, Device: cfg.Device, KeepAlive: cfg.MQTT.KeepAlive,
		HomeAssistant: mqtt.HomeAssistantOptions{Disabled: !cfg.DiscoveryEnabled(), Prefix: cfg.MQTT.DiscoveryPrefix, Cameras: names},
		Version:       d.version, Logger: d.log,
	}
	if d.broker != nil {
		opts.Broker = d.broker.URL()
		opts.Username, opts.Password = d.broker.Credentials()
	}
	router := mqtt.NewServiceRouter(d.c.svc, mqtt.Limits{MaxPayload: cfg.MQTT.MaxPayload}, d.log)
	var err error
	if d.client, err = mqtt.New(opts, d.outbox, router); err != nil {
		return startup(fmt.Errorf("mqtt: %w", err))
	}
	if err := d.client.Start(); err != nil {
		return err
	}
	return nil
}

func cameraNames(cs []config.CameraSettings) []string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return names
}

// startCameras opens and starts every enabled camera of cfg. A camera
// that cannot be opened is reported (log and events/camera down) and
// skipped: the daemon keeps serving the others and MQTT.
func (d *Daemon) startCameras(ctx context.Context, cfg config.Config) {
	enabled := cfg.EnabledCameras()
	if len(enabled) == 0 {
		d.log.Warn("no camera configured: serving MQTT commands only (add cameras to the config and send SIGHUP, or use --camera)")
		return
	}
	for _, cs := range enabled {
		cam, rec, err := d.c.NewCamera(cs, CameraMode{}, nil, d.pipe.AddEvent)
		if err != nil {
			d.log.Error("camera not started", "camera", cs.Name, "err", err)
			for _, p := range cameraDown(cs.Name, err) {
				d.pipe.AddEvent(pipeline.Event{Camera: cs.Name, Payload: p})
			}
			continue
		}
		chain, err := d.pipe.AddCamera(ctx, cam)
		if err != nil {
			d.log.Error("camera not started", "camera", cs.Name, "err", err)
			continue
		}
		d.c.mu.Lock()
		d.c.recs[cs.Name] = rec
		d.c.mu.Unlock()
		d.mu.Lock()
		d.chains[cs.Name] = chain
		d.mu.Unlock()
		go d.watchCamera(cs.Name, chain)
		d.log.Info("camera started", "camera", cs.Name, "fps_cap", cs.FPS)
	}
}

// watchCamera logs how a camera's chain ended.
func (d *Daemon) watchCamera(name string, c *pipeline.Chain) {
	<-c.Done()
	st := c.Stats()
	if err := c.Err(); err != nil {
		d.log.Error("camera stopped", "camera", name, "err", err, "frames", st.Processed)
	} else {
		d.log.Info("camera ended", "camera", name, "frames", st.Processed, "dropped", st.Dropped)
	}
	d.mu.Lock()
	if d.chains[name] == c {
		delete(d.chains, name)
	}
	d.mu.Unlock()
}

func cameraDown(name string, err error) []mqtt.Payload {
	at := mqtt.At(time.Now())
	reason := urlPattern.ReplaceAllString(err.Error(), "<url>")
	return []mqtt.Payload{
		mqtt.Camera{Camera: name, State: mqtt.CameraDown, Reason: reason, Time: at},
		mqtt.CameraState{Camera: name, Status: mqtt.CameraDown, Time: at},
	}
}

// stopCameras stops every camera and waits until they drained.
func (d *Daemon) stopCameras() {
	d.mu.Lock()
	chains := make([]*pipeline.Chain, 0, len(d.chains))
	for _, c := range d.chains {
		chains = append(chains, c)
	}
	d.mu.Unlock()
	for _, c := range chains {
		c.Stop()
	}
	d.c.mu.Lock()
	d.c.recs = map[string]*pipeline.Recognizer{}
	d.c.mu.Unlock()
}

// reload applies SIGHUP: the file is read again (the flags still win); log
// level, detection and recognition settings of the cameras and the camera
// list apply now (cameras restart); other changes are logged as needing a
// restart. An invalid file keeps the running configuration.
func (d *Daemon) reload(ctx context.Context) {
	_ = sdnotify.Reloading()
	defer func() { _ = sdnotify.Ready(); _ = sdnotify.Status(d.statusLine()) }()
	if d.load == nil {
		d.log.Error("reload: no configuration to read again, keeping the running one")
		return
	}
	cfg, err := d.load()
	if err != nil {
		d.log.Error("reload: configuration refused, keeping the running one", "err", err)
		return
	}
	if keys := config.RestartKeys(d.cfg, cfg); len(keys) > 0 {
		d.log.Warn("reload: these changes need a restart and were ignored", "keys", strings.Join(keys, ", "))
	}
	if d.level != nil {
		d.level.Set(parseLevel(cfg.Log.Level))
		if d.debug {
			d.level.Set(slog.LevelDebug)
		}
	}
	// Apply what can change to the running configuration.
	next := d.cfg
	next.Log = cfg.Log
	next.Cameras = cfg.Cameras
	next.Detect.ScoreThreshold, next.Detect.MinFaceSize = cfg.Detect.ScoreThreshold, cfg.Detect.MinFaceSize
	r := cfg.Recognition
	r.Threshold, r.Margin = d.cfg.Recognition.Threshold, d.cfg.Recognition.Margin
	next.Recognition = r
	d.stopCameras()
	d.cfg = next
	d.c.cfg = next
	d.startCameras(ctx, next)
	if d.client != nil {
		if err := d.client.SetCameras(cameraNames(next.EnabledCameras())); err != nil {
			d.log.Error("reload: discovery", "err", err)
		}
	}
	d.log.Info("reloaded", "cameras", len(next.EnabledCameras()))
}

func (d *Daemon) statusLine() string {
	d.mu.Lock()
	names := make([]string, 0, len(d.chains))
	for n := range d.chains {
		names = append(names, n)
	}
	d.mu.Unlock()
	sort.Strings(names)
	if len(names) == 0 {
		return "running, no camera (MQTT commands only)"
	}
	return fmt.Sprintf("running, %d camera(s): %s", len(names), strings.Join(names, ", "))
}

// shutdown stops in order: cameras (queues drain, events reach the
// outbox), fine-tune, the MQTT client (outbox flushed, offline published),
// the HTTP server; the caller's defers close the broker and the core
// (embedder, detector, store).
func (d *Daemon) shutdown() {
	if d.pipe != nil {
		if err := d.pipe.Close(); err != nil && !errors.Is(err, pipeline.ErrClosed) {
			d.log.Error("pipeline", "err", err)
		}
	}
	if d.client != nil {
		if err := d.client.Close(); err != nil && !errors.Is(err, mqtt.ErrClosed) {
			d.log.Error("mqtt", "err", err)
		}
	}
	if d.http != nil {
		d.http.Close()
	}
}

// health is /healthz: unhealthy when a stage is stuck.
func (d *Daemon) health() (healthReport, bool) {
	rep := healthReport{Status: "ok", MQTT: "disconnected", UptimeS: time.Since(d.started).Seconds(), Cameras: []string{}}
	d.mu.Lock()
	ready := d.ready
	for n := range d.chains {
		rep.Cameras = append(rep.Cameras, n)
	}
	d.mu.Unlock()
	sort.Strings(rep.Cameras)
	if d.client != nil && d.client.Connected() {
		rep.MQTT = "connected"
	}
	if !ready {
		rep.Status = "starting"
		return rep, false
	}
	if err := d.pipe.Healthy(); err != nil {
		rep.Status, rep.Problem = "unhealthy", err.Error()
		return rep, false
	}
	return rep, true
}

// registerMetrics adds the daemon-level series to the core's registry.
func (d *Daemon) registerMetrics() {
	reg := d.c.reg
	reg.GaugeFunc("edged_build_info", "Version of edged (value 1).", []string{"version"},
		func(emit func(float64, ...string)) { emit(1, d.version) })
	reg.GaugeFunc("edged_outbox_depth", "Events waiting in the outbox for the MQTT broker.", nil,
		func(emit func(float64, ...string)) {
			if n := d.outbox.Len(); n >= 0 {
				emit(float64(n))
			}
		})
	reg.GaugeFunc("edged_mqtt_connected", "1 when connected to the MQTT broker.", nil,
		func(emit func(float64, ...string)) {
			if d.client != nil && d.client.Connected() {
				emit(1)
			} else {
				emit(0)
			}
		})
	reg.CounterFunc("edged_mqtt_published_total", "Events published and acknowledged by the broker.", nil,
		func(emit func(float64, ...string)) {
			if d.client != nil {
				emit(float64(d.client.Stats().Published))
			}
		})
	reg.CounterFunc("edged_mqtt_commands_total", "Commands received.", nil,
		func(emit func(float64, ...string)) {
			if d.client != nil {
				emit(float64(d.client.Stats().Commands))
			}
		})
	reg.GaugeFunc("edged_gallery_people", "People in the gallery.", nil,
		func(emit func(float64, ...string)) { emit(float64(d.c.g.Info().People)) })
	reg.GaugeFunc("edged_gallery_samples", "Samples in the gallery.", nil,
		func(emit func(float64, ...string)) { emit(float64(d.c.g.Info().Samples)) })
	reg.GaugeFunc("edged_gallery_threshold", "Distance threshold of the open-set decision.", nil,
		func(emit func(float64, ...string)) { emit(d.c.g.Threshold()) })
}
