package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/fleet"
	"github.com/edged-dev/edged/internal/sdnotify"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/pipeline/vision"
	"github.com/edged-dev/edged/service"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/web"
	"github.com/edged-dev/edged/web/backend"
)

// Options configure an Agent. Config, DataDir and ModelDir are required.
type Options struct {
	// Config is the configuration, defaults filled (config.Default, a
	// file, Finish); New validates it.
	Config config.Config
	// DataDir is the store's directory (created when missing).
	DataDir string
	// ModelDir holds the model files.
	ModelDir string
	// ConfigFile names the configuration's file in the log ("": none).
	ConfigFile string
	// Logger receives the daemon's logs. Default: slog.Default().
	Logger *slog.Logger
	// Level is Logger's level, if it can change: Reload sets it from
	// log.level. Optional.
	Level *slog.LevelVar
	// Debug keeps debug logging whatever log.level says (and lets the
	// embedded broker log below warnings).
	Debug bool
	// Version is reported in status replies, discovery and edged_build_info.
	Version string
	// Started is when the process started, for edged_startup_seconds and
	// the uptime in /healthz. Default: when New was called.
	Started time.Time
}

// Agent is the edged daemon: one store, gallery, detector, embedder and
// MQTT connection, and one pipeline chain per camera. New, Start and Close
// are called once each, in that order (Run does Start and Close around a
// context); Reload, Wait and Health are safe for concurrent use while it
// runs.
type Agent struct {
	opts    Options
	log     *slog.Logger
	started time.Time

	broker *mqtt.Broker // nil with an external broker
	c      *Core
	outbox *service.StoreOutbox
	pipe   *pipeline.Pipeline
	ft     *finetuner // nil when fine-tuning is off
	client *mqtt.Client
	http   *httpServer // nil when http.addr is off
	web    *web.Server // the face library page, nil when http.addr is off
	webB   *backend.Backend
	snaps  *vision.Snapshots // the cameras' latest frames, on request

	stopBG context.CancelFunc // store GC, fine-tune
	// stopFleet ends the fleet sync; fleetDone closes when it has (it
	// publishes the device's offline member record on the way out).
	stopFleet context.CancelFunc
	fleetDone chan struct{}
	bgWG      sync.WaitGroup
	camCtx    context.Context // the cameras' context
	stopCam   context.CancelFunc
	stopWD    context.CancelFunc // the systemd watchdog
	once      sync.Once          // shutdown

	reloadMu sync.Mutex    // one Start or Reload at a time
	cfg      config.Config // the running configuration

	mu      sync.Mutex
	chains  map[string]*pipeline.Chain // running cameras
	ready   bool
	running bool // Start was called
	closed  bool
}

// New opens everything but the cameras, in this order: the embedded broker
// (when no broker URL is configured, so clients can connect while models
// load), the store, gallery and models (OpenCore), the pipeline and its
// outbox, the background work (store GC, fine-tune), the MQTT client and
// the /metrics and /healthz endpoint. Errors after which a restart cannot
// help are StartupErrors. On error, what was opened is closed.
func New(o Options) (_ *Agent, err error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Started.IsZero() {
		o.Started = time.Now()
	}
	a := &Agent{opts: o, log: o.Logger, started: o.Started, cfg: o.Config, chains: map[string]*pipeline.Chain{}}
	a.camCtx, a.stopCam = context.WithCancel(context.Background())
	log := a.log
	log.Info("edged starting", "version", o.Version, "device", o.Config.Device, "data", o.DataDir, "config", o.ConfigFile)
	_ = sdnotify.Status("starting")
	defer func() {
		if err != nil {
			_ = sdnotify.Status("failed: " + err.Error())
			a.shutdown()
		}
	}()
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return nil, startup(err)
	}
	if o.DataDir == "" || o.ModelDir == "" {
		return nil, startup(errors.New("agent: DataDir and ModelDir are required"))
	}

	// The embedded broker first: clients can connect while models load.
	if cfg.MQTT.Broker == "" {
		a.broker, err = mqtt.StartBrokerWith(mqtt.BrokerOptions{Addr: cfg.MQTT.Listen, Prefix: cfg.MQTT.TopicPrefix,
			MaxPacketSize: uint32(cfg.MQTT.MaxPayload) + 4096, Logger: a.brokerLog()})
		if err != nil {
			return nil, startup(fmt.Errorf("embedded broker: %w", err))
		}
	}

	enabled := cfg.EnabledCameras()
	a.c, err = OpenCore(cfg, log, CoreOptions{DataDir: o.DataDir, ModelDir: o.ModelDir, DetectWorkers: min(max(len(enabled), 1), 2), Version: o.Version})
	if err != nil {
		return nil, err
	}
	a.registerMetrics()

	// The web page's data: the same service layer as the MQTT commands.
	a.snaps = vision.NewSnapshots()
	var observer service.Observer = a.c.svc
	if cfg.HTTPEnabled() {
		a.webB, err = backend.New(backend.Options{Service: a.c.svc, Store: a.c.st, Enroller: a.c.en, Gallery: a.c.g,
			Unknowns: a.c.svcUnknowns(), Frames: a.cameraFrame, Finetune: cfg.FinetuneEnabled(),
			Limits: mqtt.Limits{MaxPayload: cfg.MQTT.MaxPayload}, Logger: log.With("component", "web")})
		if err != nil {
			return nil, startup(err)
		}
		observer = observers{a.c.svc, a.webB}
	}

	// Pipeline: the outbox output (and the log) consume every camera.
	a.outbox = service.NewStoreOutbox(a.c.st)
	a.pipe = pipeline.New(pipeline.Options{Queue: cfg.Pipeline.FaceQueue, EventQueue: cfg.Pipeline.EventQueue,
		Logger: log, Metrics: a.c.reg},
		service.NewOutboxOutput(a.c.st, observer, log), pipeline.LogOutput{Log: log.With("component", "events")})
	if err := a.pipe.Start(); err != nil {
		return nil, err
	}
	a.c.mu.Lock()
	a.c.pipe = a.pipe
	a.c.health = a.degraded
	a.c.mu.Unlock()

	// Background work: store GC, fine-tune.
	bg, stopBG := context.WithCancel(context.Background())
	a.stopBG = stopBG
	a.bgWG.Add(1)
	go func() { defer a.bgWG.Done(); _ = a.c.st.RunGC(bg) }()
	if a.c.xp != nil {
		a.bgWG.Add(1)
		go func() { defer a.bgWG.Done(); _ = a.c.xp.Run(bg) }()
	}
	if cfg.FinetuneEnabled() {
		a.ft = newFinetuner(a.c, cfg.Finetune.Debounce, log)
		if a.webB != nil {
			a.ft.observe = func(p mqtt.Payload) { a.webB.ObservePayload("", p) }
		}
		a.c.svc.SetFinetuner(a.ft)
		a.bgWG.Add(1)
		go func() { defer a.bgWG.Done(); a.ft.Run(bg) }()
	}

	// MQTT client: publishes the outbox, serves the commands.
	if err := a.startMQTT(); err != nil {
		return nil, err
	}
	if cfg.FleetEnabled() {
		if err := a.startFleet(); err != nil {
			return nil, err
		}
	}
	if cfg.HTTPEnabled() {
		auth, err := web.LoadAuth(cfg.HTTP.Auth.PasswordFile, cfg.HTTP.Auth.TokenFile)
		if err != nil {
			return nil, startup(fmt.Errorf("http.auth: %w", err))
		}
		if a.web, err = web.New(web.Options{Backend: a.webB, Auth: auth, Secure: cfg.HTTP.TLSCert != "",
			Logger: log.With("component", "web")}); err != nil {
			return nil, startup(err)
		}
		if a.http, err = startHTTP(cfg.HTTP, a.c.reg, a.Health, a.web, log); err != nil {
			return nil, startup(err)
		}
	}
	return a, nil
}

// cameraFrame is the web page's "latest frame" of a camera: the next one,
// annotated; a camera that sends none in time is unavailable, not an error.
func (a *Agent) cameraFrame(ctx context.Context, camera string) ([]byte, error) {
	b, err := a.snaps.Take(ctx, camera)
	if errors.Is(err, vision.ErrNoFrame) {
		return nil, web.Errorf(web.CodeUnavailable, "camera %s sent no frame (stopped, ended or not running)", camera)
	}
	return b, err
}

// observers passes each event to several observers (the service: MQTT
// state; the web page: live events).
type observers []service.Observer

func (o observers) Observe(e pipeline.Event) {
	for _, x := range o {
		x.Observe(e)
	}
}

// Start starts every enabled camera (one that cannot be opened is reported
// and skipped), then reports ready: the log, edged_startup_seconds and
// systemd (READY=1, and WATCHDOG=1 while no stage is stuck).
func (a *Agent) Start() error {
	a.reloadMu.Lock()
	a.mu.Lock()
	switch {
	case a.closed:
		a.mu.Unlock()
		a.reloadMu.Unlock()
		return ErrClosed
	case a.running:
		a.mu.Unlock()
		a.reloadMu.Unlock()
		return errors.New("agent: already started")
	}
	a.running = true
	a.mu.Unlock()
	a.startCameras(a.cfg)
	a.reloadMu.Unlock()
	a.mu.Lock()
	a.ready = true
	n := len(a.chains)
	a.mu.Unlock()
	ready := time.Since(a.started)
	a.c.reg.GaugeFunc("edged_startup_seconds", "Time from process start to ready (pipeline running).", nil,
		func(emit func(float64, ...string)) { emit(ready.Seconds()) })
	a.log.Info("ready", "startup", ready.Round(time.Millisecond), "cameras", n, "mqtt", a.brokerURL())
	_ = sdnotify.Ready()
	_ = sdnotify.Status(a.statusLine())

	wdCtx, stopWD := context.WithCancel(context.Background())
	a.stopWD = stopWD
	go sdnotify.Watchdog(wdCtx, a.pipe.Healthy)
	return nil
}

// Run starts the agent, serves until ctx ends, and closes it. It returns
// nil after a clean stop.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return a.Close()
}

// Wait blocks until every running camera has ended (a file camera at the
// end of its file) or ctx ends. The agent keeps serving MQTT commands.
func (a *Agent) Wait(ctx context.Context) error { return a.pipe.Wait(ctx) }

// Close stops the agent, each part after the ones that feed it: the
// cameras (their queues drain and every event reaches the outbox), the
// MQTT client (it flushes the outbox and publishes offline), the HTTP
// endpoint, the background work (a running fine-tune is cancelled and
// stores nothing), the embedder, detector and store, and last the embedded
// broker. Later calls return ErrClosed.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	a.closed = true
	a.mu.Unlock()
	if a.stopWD != nil {
		a.stopWD()
	}
	a.log.Info("stopping")
	_ = sdnotify.Stopping()
	err := a.shutdown()
	a.log.Info("stopped")
	return err
}

// shutdown closes what is open, in Close's order (once).
func (a *Agent) shutdown() (err error) {
	a.once.Do(func() {
		a.stopCam()
		if a.pipe != nil {
			if perr := a.pipe.Close(); perr != nil && !errors.Is(perr, pipeline.ErrClosed) {
				a.log.Error("pipeline", "err", perr)
				err = perr
			}
		}
		if a.stopFleet != nil {
			a.stopFleet()
			<-a.fleetDone
		}
		if a.client != nil {
			if cerr := a.client.Close(); cerr != nil && !errors.Is(cerr, mqtt.ErrClosed) {
				a.log.Error("mqtt", "err", cerr)
				err = errors.Join(err, cerr)
			}
		}
		if a.web != nil {
			// Ends the pages' event streams, which the HTTP server's
			// shutdown would otherwise wait for.
			_ = a.web.Close()
		}
		if a.http != nil {
			a.http.Close()
		}
		if a.stopBG != nil {
			a.stopBG()
			a.bgWG.Wait()
		}
		if a.c != nil {
			a.c.Close()
		}
		if a.broker != nil {
			_ = a.broker.Close()
		}
	})
	return err
}

// brokerLog is the embedded broker's logger: warnings and errors only,
// unless --debug.
func (a *Agent) brokerLog() *slog.Logger {
	if a.opts.Debug {
		return a.log
	}
	return slog.New(minLevel{a.log.Handler(), slog.LevelWarn})
}

func (a *Agent) brokerURL() string {
	if a.broker != nil {
		return "embedded " + a.broker.URL()
	}
	return redact(a.cfg.MQTT.Broker)
}

// redact hides the credentials of the URLs in u.
func redact(u string) string { return urlPattern.ReplaceAllStringFunc(u, redactUserinfo) }

func redactUserinfo(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.LastIndex(u, "@"); at > i {
			return u[:i+3] + "***@" + u[at+1:]
		}
	}
	return u
}

func (a *Agent) startMQTT() error {
	cfg := a.cfg
	names := cameraNames(cfg.EnabledCameras())
	opts := mqtt.Options{
		Broker: cfg.MQTT.Broker, ClientID: cfg.MQTT.ClientID, Username: cfg.MQTT.Username, Password: cfg.MQTT.Password,
		CAFile: cfg.MQTT.CAFile, CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile,
		Prefix: cfg.MQTT.TopicPrefix, Device: cfg.Device, KeepAlive: cfg.MQTT.KeepAlive,
		HomeAssistant: mqtt.HomeAssistantOptions{Disabled: !cfg.DiscoveryEnabled(), Prefix: cfg.MQTT.DiscoveryPrefix, Cameras: names},
		Version:       a.opts.Version, Logger: a.log,
	}
	if a.broker != nil {
		opts.Broker = a.broker.URL()
		opts.Username, opts.Password = a.broker.Credentials()
	}
	// Commands with side effects run once per (command, id) within
	// mqtt.dedup_ttl, across restarts: their first replies live in the store.
	opts.DedupTTL, opts.Dedup = cfg.MQTT.DedupTTL, service.NewCommandLog(a.c.st)
	router := mqtt.NewServiceRouter(a.c.svc, mqtt.Limits{MaxPayload: cfg.MQTT.MaxPayload}, a.log)
	router.Handle("fleet", mqtt.Command(func(ctx context.Context, r fleet.CommandRequest) (fleet.Status, error) {
		if s := a.c.fleet.Load(); s != nil {
			return s.Command(ctx, r)
		}
		return fleet.CommandOff(ctx, r)
	}))
	var err error
	if a.client, err = mqtt.New(opts, a.outbox, router); err != nil {
		return startup(fmt.Errorf("mqtt: %w", err))
	}
	if err := a.client.Start(); err != nil {
		return err
	}
	return nil
}

// startFleet joins fleet.name: people are shared with the other devices
// of the fleet through retained records on the broker (docs/fleet.md).
// The local store stays the source of this device's truth: changes are
// queued in it and published when the broker is there.
func (a *Agent) startFleet() error {
	cfg := a.cfg
	var key []byte
	if cfg.Fleet.KeyFile != "" {
		var err error
		if key, err = fleet.LoadKey(cfg.Fleet.KeyFile); err != nil {
			return startup(fmt.Errorf("fleet.key_file: %w", err))
		}
	}
	c := a.c
	s, err := fleet.New(fleet.Options{
		Name: cfg.Fleet.Name, Device: cfg.Device, Prefix: cfg.MQTT.TopicPrefix, Backbone: c.bb.ID, Version: a.opts.Version,
		Store: c.st, Transport: a.client, Key: key, ShareCrops: cfg.Fleet.ShareCrops, KeepCrops: cfg.KeepCropsEnabled(),
		// Records of another backbone come with crops only with
		// fleet.share_crops: this device embeds them with its own.
		Reembed: func(ctx context.Context, crops [][]byte) ([][]float32, error) {
			return enroll.EmbedCrops(crops, func(cr face.Chip) (face.Chip, error) { return detect.ChipFromCrop(cr, c.bb.Template) }, c.emb)
		},
		OnChange: func(cs []fleet.Change) {
			ids := make([]string, len(cs))
			for i, ch := range cs {
				ids[i] = ch.PersonID
			}
			if err := c.en.Refresh(ids...); err != nil {
				a.log.Error("fleet: gallery refresh", "err", err)
			}
		},
		Events: func(ch fleet.Change) []store.OutboxEvent {
			return []store.OutboxEvent{fleet.SyncEvent(cfg.Fleet.Name, ch)}
		},
		TombstoneTTL: cfg.Fleet.TombstoneTTL, MaxSamples: cfg.Fleet.MaxSamples, MaxRecordBytes: cfg.Fleet.MaxRecordBytes,
		Metrics: c.reg, Logger: a.log.With("component", "fleet"),
	})
	if err != nil {
		return startup(fmt.Errorf("fleet: %w", err))
	}
	c.fleet.Store(s)
	ctx, stop := context.WithCancel(context.Background())
	a.stopFleet, a.fleetDone = stop, make(chan struct{})
	go func() {
		defer close(a.fleetDone)
		if err := s.Run(ctx); err != nil {
			a.log.Error("fleet", "err", err)
		}
	}()
	a.log.Info("joined the fleet", "fleet", cfg.Fleet.Name, "sealed", key != nil, "share_crops", cfg.Fleet.ShareCrops)
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
func (a *Agent) startCameras(cfg config.Config) {
	enabled := cfg.EnabledCameras()
	if len(enabled) == 0 {
		a.log.Warn("no camera configured: serving MQTT commands only (add cameras to the config and send SIGHUP, or use --camera)")
		return
	}
	for _, cs := range enabled {
		cam, rec, err := a.c.newCamera(cs, cameraMode{}, []pipeline.FrameOutput{a.snaps.Output(cs.Name)}, a.pipe.AddEvent)
		if err != nil {
			a.log.Error("camera not started", "camera", cs.Name, "err", err)
			for _, p := range cameraDown(cs.Name, err) {
				a.pipe.AddEvent(pipeline.Event{Camera: cs.Name, Payload: p})
			}
			continue
		}
		chain, err := a.pipe.AddCamera(a.camCtx, cam)
		if err != nil {
			a.log.Error("camera not started", "camera", cs.Name, "err", err)
			continue
		}
		a.c.mu.Lock()
		a.c.recs[cs.Name] = rec
		a.c.mu.Unlock()
		a.mu.Lock()
		a.chains[cs.Name] = chain
		a.mu.Unlock()
		go a.watchCamera(cs.Name, chain)
		a.log.Info("camera started", "camera", cs.Name, "fps_cap", cs.FPS)
	}
}

// watchCamera logs how a camera's chain ended.
func (a *Agent) watchCamera(name string, c *pipeline.Chain) {
	<-c.Done()
	st := c.Stats()
	if err := c.Err(); err != nil {
		a.log.Error("camera stopped", "camera", name, "err", err, "frames", st.Processed)
	} else {
		a.log.Info("camera ended", "camera", name, "frames", st.Processed, "dropped", st.Dropped)
	}
	a.mu.Lock()
	if a.chains[name] == c {
		delete(a.chains, name)
	}
	a.mu.Unlock()
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
func (a *Agent) stopCameras() {
	a.mu.Lock()
	chains := make([]*pipeline.Chain, 0, len(a.chains))
	for _, c := range a.chains {
		chains = append(chains, c)
	}
	a.mu.Unlock()
	for _, c := range chains {
		c.Stop()
	}
	a.c.mu.Lock()
	a.c.recs = map[string]*pipeline.Recognizer{}
	a.c.mu.Unlock()
}

// Reload reads the configuration with load (edged run: the file again,
// the flags still win) and applies what changed: the log level, the camera
// list and the cameras' detection and recognition settings apply at once
// (the cameras restart); the other changed sections, which need a restart,
// are logged, ignored and returned (config.RestartKeys). A configuration
// that load or Validate refuses keeps the running one and is returned as
// the error. systemd is told RELOADING=1, then READY=1.
func (a *Agent) Reload(load func() (config.Config, error)) ([]string, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	_ = sdnotify.Reloading()
	defer func() { _ = sdnotify.Ready(); _ = sdnotify.Status(a.statusLine()) }()
	cfg, err := load()
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		a.log.Error("reload: configuration refused, keeping the running one", "err", err)
		return nil, err
	}
	a.mu.Lock()
	closed, running := a.closed, a.running
	a.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	keys := config.RestartKeys(a.cfg, cfg)
	if len(keys) > 0 {
		a.log.Warn("reload: these changes need a restart and were ignored", "keys", strings.Join(keys, ", "))
	}
	if a.opts.Level != nil {
		a.opts.Level.Set(parseLevel(cfg.Log.Level))
		if a.opts.Debug {
			a.opts.Level.Set(slog.LevelDebug)
		}
	}
	// Apply what can change to the running configuration.
	next := a.cfg
	next.Log = cfg.Log
	next.Cameras = cfg.Cameras
	next.Detect.ScoreThreshold, next.Detect.MinFaceSize = cfg.Detect.ScoreThreshold, cfg.Detect.MinFaceSize
	r := cfg.Recognition
	r.Threshold, r.Margin = a.cfg.Recognition.Threshold, a.cfg.Recognition.Margin
	next.Recognition = r
	a.stopCameras()
	a.cfg = next
	a.c.setConfig(next)
	if running { // else Start starts them
		a.startCameras(next)
	}
	if a.client != nil {
		if err := a.client.SetCameras(cameraNames(next.EnabledCameras())); err != nil {
			a.log.Error("reload: discovery", "err", err)
		}
	}
	a.log.Info("reloaded", "cameras", len(next.EnabledCameras()))
	return keys, nil
}

func (a *Agent) statusLine() string {
	a.mu.Lock()
	names := make([]string, 0, len(a.chains))
	for n := range a.chains {
		names = append(names, n)
	}
	a.mu.Unlock()
	sort.Strings(names)
	if len(names) == 0 {
		return "running, no camera (MQTT commands only)"
	}
	return fmt.Sprintf("running, %d camera(s): %s", len(names), strings.Join(names, ", "))
}

// Health is the body of /healthz and whether the agent is healthy: not
// while starting, nor when a stage is stuck.
func (a *Agent) Health() (HealthReport, bool) {
	rep := HealthReport{Status: "ok", MQTT: "disconnected", UptimeS: time.Since(a.started).Seconds(), Cameras: []string{}}
	a.mu.Lock()
	ready := a.ready
	for n := range a.chains {
		rep.Cameras = append(rep.Cameras, n)
	}
	a.mu.Unlock()
	sort.Strings(rep.Cameras)
	if a.client != nil && a.client.Connected() {
		rep.MQTT = "connected"
	}
	if !ready {
		rep.Status = "starting"
		return rep, false
	}
	if err := a.pipe.Healthy(); err != nil {
		rep.Status, rep.Problem = "unhealthy", err.Error()
		return rep, false
	}
	rep.Status, rep.Problem = a.degraded()
	return rep, true
}

// Degraded states: the daemon runs and recognises, and says what it cannot
// do (in /healthz, with status 200, and in the MQTT status reply).
const (
	healthStorageFull = "degraded: " + store.StatusStorageFull
	healthRetrying    = "degraded: output retrying"
)

// degraded is the health word when nothing is stuck: "ok", or what is
// degraded and why. Asking the store also lets it switch back to
// read-write once space is back (so writing resumes by itself).
func (a *Agent) degraded() (status, problem string) {
	if st := a.c.st.Status(); st.Degraded() {
		if st.Err != nil {
			problem = st.Err.Error()
		}
		return healthStorageFull, problem
	}
	if r := a.pipe.Retrying(); r != "" {
		return healthRetrying, r
	}
	return service.HealthOK, ""
}

// registerMetrics adds the daemon-level series to the core's registry.
func (a *Agent) registerMetrics() {
	reg := a.c.reg
	reg.GaugeFunc("edged_build_info", "Version of edged (value 1).", []string{"version"},
		func(emit func(float64, ...string)) { emit(1, a.opts.Version) })
	reg.GaugeFunc("edged_outbox_depth", "Events waiting in the outbox for the MQTT broker.", nil,
		func(emit func(float64, ...string)) {
			if n := a.outbox.Len(); n >= 0 {
				emit(float64(n))
			}
		})
	reg.GaugeFunc("edged_mqtt_connected", "1 when connected to the MQTT broker.", nil,
		func(emit func(float64, ...string)) {
			if a.client != nil && a.client.Connected() {
				emit(1)
			} else {
				emit(0)
			}
		})
	reg.CounterFunc("edged_mqtt_published_total", "Events published and acknowledged by the broker.", nil,
		func(emit func(float64, ...string)) {
			if a.client != nil {
				emit(float64(a.client.Stats().Published))
			}
		})
	reg.CounterFunc("edged_mqtt_commands_total", "Commands received.", nil,
		func(emit func(float64, ...string)) {
			if a.client != nil {
				emit(float64(a.client.Stats().Commands))
			}
		})
	reg.GaugeFunc("edged_store_degraded", "1 while the store refuses writes (reason: storage_full).", []string{"reason"},
		func(emit func(float64, ...string)) {
			v := 0.0
			if a.c.st.Status().Degraded() {
				v = 1
			}
			emit(v, store.StatusStorageFull)
		})
	reg.CounterFunc("edged_store_storage_full_total", "Times the store went below its free-space reserve (storage_full episodes).", nil,
		func(emit func(float64, ...string)) { emit(float64(a.c.st.Status().Episodes)) })
	reg.CounterFunc("edged_store_refused_writes_total", "Writes refused for lack of disk space.", nil,
		func(emit func(float64, ...string)) { emit(float64(a.c.st.Status().RefusedWrites)) })
	reg.GaugeFunc("edged_outbox_bytes", "Stored size of the events waiting in the outbox.", nil,
		func(emit func(float64, ...string)) { emit(float64(a.c.st.OutboxStats().Bytes)) })
	reg.CounterFunc("edged_outbox_dropped_total", "Events the outbox bounds dropped (reason: size, age).", []string{"reason"},
		func(emit func(float64, ...string)) {
			for reason, n := range a.c.st.OutboxStats().Dropped {
				emit(float64(n), reason)
			}
		})
	reg.CounterFunc("edged_mqtt_command_repeats_total", "Repeated commands (same command and id) answered with their first reply.", nil,
		func(emit func(float64, ...string)) {
			if a.client != nil {
				emit(float64(a.client.Stats().Repeats))
			}
		})
	reg.GaugeFunc("edged_unknown_identities", "Unknown-face identities kept.", nil,
		func(emit func(float64, ...string)) { emit(float64(a.c.unk.Len())) })
	reg.GaugeFunc("edged_gallery_people", "People in the gallery.", nil,
		func(emit func(float64, ...string)) { emit(float64(a.c.g.Info().People)) })
	reg.GaugeFunc("edged_gallery_samples", "Samples in the gallery.", nil,
		func(emit func(float64, ...string)) { emit(float64(a.c.g.Info().Samples)) })
	reg.GaugeFunc("edged_gallery_threshold", "Distance threshold of the open-set decision.", nil,
		func(emit func(float64, ...string)) { emit(a.c.g.Threshold()) })
}
