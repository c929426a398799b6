package agent

// core.go builds the long-lived parts shared by `edged run` (Agent),
// `edged replay` (Core.Replay) and `edged bench` (Core.Bench) from a
// configuration: store, gallery, unknown identities, detector, embedder,
// enroller, service, and the per-camera chains of the pipeline.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-dev/edged/capture"
	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/fleet"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/internal/metrics"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/pipeline/vision"
	"github.com/edged-dev/edged/service"
	"github.com/edged-dev/edged/store"
)

// CoreOptions say how to open the core.
type CoreOptions struct {
	DataDir  string // the store
	ModelDir string // the model files
	// ReadOnly opens the store without its writer lock (replay, bench):
	// unknown identities then live in memory only.
	ReadOnly bool
	// DetectWorkers is the detector's network pool size (one per camera
	// that detects at once).
	DetectWorkers int
	// Version is edged's version (status replies).
	Version string
}

// Core is everything but the pipeline and MQTT: the store, the gallery and
// the unknown-face clusters, the detector and the embedder of the
// configured backbone, the enroller and the MQTT command service. Its
// cameras (newCamera) share the detector's pool and the embedder's batches.
// Close it last.
type Core struct {
	cfg  config.Config
	log  *slog.Logger
	reg  *metrics.Registry
	recm *pipeline.RecognitionMetrics

	bb  *infer.Backbone // model.backbone
	st  *store.Store
	g   *gallery.Gallery
	unk *gallery.Unknowns
	det *detect.Detector
	emb *infer.Embedder
	en  *enroll.Enroller
	svc *service.Service

	version     string
	readOnly    bool
	memUnknowns *memoryUnknowns // read-only stores: unknown identities in memory
	tmpDir      string          // a throw-away store, removed by Close

	mu   sync.Mutex
	recs map[string]*pipeline.Recognizer // running cameras' recognizers
	pipe *pipeline.Pipeline
	// health is the agent's degraded(), once it runs (guarded by mu).
	health func() (status, problem string)
	// fleet is the fleet sync once the agent joined one (fleet.name), nil
	// otherwise: the enroller tells it about every local change.
	fleet atomic.Pointer[fleet.Sync]
	// xp files decided tracks as device experience (recognition.experience);
	// nil when off or the store is read-only. The agent runs it.
	xp *service.Experience
}

// OpenCore opens the store and loads the gallery and the models. Every
// error is a StartupError. On error, what was opened is closed.
func OpenCore(cfg config.Config, log *slog.Logger, o CoreOptions) (_ *Core, err error) {
	c := &Core{cfg: cfg, log: log, reg: metrics.NewRegistry(), recs: map[string]*pipeline.Recognizer{}, readOnly: o.ReadOnly, version: o.Version}
	c.recm = pipeline.NewRecognitionMetrics(c.reg)
	defer func() {
		if err != nil {
			c.Close()
			err = startup(err)
		}
	}()
	if c.bb, err = infer.Lookup(cfg.Model.Backbone); err != nil {
		return nil, fmt.Errorf("model.backbone: %w", err)
	}
	key, err := store.LoadKey(cfg.Store.KeyFile, cfg.Store.Key)
	if err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	dir, readOnly := o.DataDir, o.ReadOnly
	if o.ReadOnly {
		if _, serr := os.Stat(o.DataDir); errors.Is(serr, os.ErrNotExist) {
			// Nobody enrolled yet: an empty, throw-away gallery (every face
			// is unknown).
			log.Warn("no data directory: nobody is enrolled, every face will be unknown (enroll with edged enroll --data DIR)", "data", o.DataDir)
			if dir, err = os.MkdirTemp("", "edged-empty-"); err != nil {
				return nil, err
			}
			c.tmpDir, readOnly, key = dir, false, nil
		}
	}
	c.st, err = store.Open(store.Options{Dir: dir, EncryptionKey: key, ReadOnly: readOnly,
		GCInterval: cfg.Store.GCInterval, MinFreeBytes: cfg.Store.MinFreeBytes(),
		OutboxMaxBytes: cfg.Store.OutboxMaxBytes(), OutboxMaxAge: cfg.Store.OutboxMaxAgeOption(),
		Logger: log.With("component", "store")})
	if err != nil {
		if o.ReadOnly {
			return nil, fmt.Errorf("open store %s: %w (if edged runs on it, stop it or use a copy: edged backup)", o.DataDir, err)
		}
		return nil, fmt.Errorf("open store %s: %w", o.DataDir, err)
	}
	minScore, minSize := cfg.Detect.ScoreThreshold, cfg.Detect.MinFaceSize
	for _, cs := range cfg.EnabledCameras() {
		minScore, minSize = min(minScore, cs.ScoreThreshold), min(minSize, cs.MinFaceSize)
	}
	dopts := detect.DefaultOptions(o.ModelDir)
	dopts.Backend = cfg.Detect.Backend
	dopts.ScoreThreshold = float32(minScore)
	dopts.NMSThreshold = float32(cfg.Detect.NMSThreshold)
	dopts.MinFace = minSize
	dopts.MaxFace = cfg.Detect.MaxFaceSize
	dopts.Workers = max(1, o.DetectWorkers)
	dopts.Template = c.bb.Template
	dopts.Logger = log.With("component", "detect")
	if c.det, err = detect.New(dopts); err != nil {
		return nil, fmt.Errorf("face detector: %w", err)
	}
	eopts := infer.DefaultOptions()
	eopts.Backbone = c.bb.ID
	eopts.MaxBatch = cfg.Pipeline.EmbedBatch
	eopts.BatchWait = cfg.Pipeline.EmbedWait
	if eopts.BatchWait == 0 {
		eopts.BatchWait = -1 // config 0: do not wait
	}
	eopts.Logger = log.With("component", "infer")
	if c.emb, err = infer.NewEmbedder(o.ModelDir, eopts); err != nil {
		return nil, fmt.Errorf("embedding network: %w", err)
	}
	// A store whose embeddings come from another backbone is re-embedded
	// from its face crops before anything is matched: the gallery below
	// then holds one backbone's vectors only.
	// Below the disk reserve the store takes no writes: the re-embedding
	// waits for the next start with space (meanwhile the gallery holds only
	// this backbone's vectors, as LoadGallery reports).
	if st := c.st.Status(); st.Degraded() {
		log.Warn("the store is below its free-space reserve: recognition runs, every write is refused until space is back (degraded: storage_full)", "err", st.Err)
	} else if !o.ReadOnly && c.tmpDir == "" {
		if err := reembedStore(context.Background(), c.st, c.bb, c.emb, log); err != nil {
			return nil, err
		}
	}
	c.g = gallery.New(gallery.Options{Space: c.bb.Space, Threshold: cfg.Recognition.Threshold, Margin: cfg.Recognition.Margin,
		Logger: log.With("component", "gallery")})
	rep, err := enroll.LoadGallery(c.st, c.g, c.bb.ID)
	if err != nil {
		return nil, err
	}
	for _, m := range rep.Messages() {
		log.Warn(m)
	}
	maxUnknowns, unknownAge := cfg.Recognition.UnknownBounds()
	c.unk = gallery.NewUnknowns(gallery.UnknownOptions{Space: c.bb.Space, Max: maxUnknowns, MaxAge: unknownAge})
	if n, err := enroll.LoadUnknowns(c.st, c.unk, c.bb.ID); err != nil {
		return nil, err
	} else if n > 0 {
		log.Info("unknown-face clusters of another backbone are not used", "clusters", n, "backbone", c.bb.ID)
	}
	if !o.ReadOnly && c.tmpDir == "" && !c.st.Status().Degraded() {
		if gone, err := enroll.PruneUnknowns(c.st, c.unk, time.Now()); err != nil {
			log.Warn("pruning expired unknown-face clusters", "err", err)
		} else if len(gone) > 0 {
			log.Info("expired unknown-face clusters deleted", "clusters", len(gone), "ttl", unknownAge)
		}
	}
	if o.ReadOnly {
		c.memUnknowns = &memoryUnknowns{u: c.unk}
	}

	c.en = enroll.New(c.st, c.g, c.det, c.emb, enroll.Options{
		Backbone:  c.bb.ID,
		KeepChips: cfg.Store.SaveChips,
		DropCrops: !cfg.KeepCropsEnabled(),
		Changed: func(ids ...string) {
			if s := c.fleet.Load(); s != nil {
				s.Changed(ids...)
			}
		},
		Events: func(r enroll.Result) []store.OutboxEvent { return c.svc.EnrollEvents(r) },
		Logger: log.With("component", "enroll"),
	})
	svcOpts := service.Options{Device: cfg.Device, Version: o.Version, Store: c.st, Gallery: c.g, Enroller: c.en,
		Cameras: c, Health: c.healthWord, Logger: log}
	if cfg.UnknownClustersEnabled() && !o.ReadOnly {
		svcOpts.Unknowns = c.unk
	}
	if c.svc, err = service.New(svcOpts); err != nil {
		return nil, err
	}
	if cfg.Recognition.ExperienceOn() && !o.ReadOnly && c.tmpDir == "" {
		c.xp = service.NewExperience(c.en, service.ExperienceOptions{MinConfidence: cfg.Recognition.ExperienceMinConfidence,
			MinQuality: float32(cfg.Recognition.MinQuality), MaxPerPerson: cfg.Recognition.ExperienceMaxPerPerson,
			MaxTotal: cfg.Recognition.ExperienceMaxTotal, Logger: log.With("component", "experience")})
	}
	trimStartupPages(log)
	return c, nil
}

// svcUnknowns is the live unknown-face clustering the service files into,
// nil when recognition.unknown_clusters is off (or the store read-only).
func (c *Core) svcUnknowns() *gallery.Unknowns {
	if c.cfg.UnknownClustersEnabled() && !c.readOnly {
		return c.unk
	}
	return nil
}

// healthWord is the status reply's health: the agent's (set once its
// pipeline runs), else the store's alone.
func (c *Core) healthWord() string {
	c.mu.Lock()
	h := c.health
	c.mu.Unlock()
	if h != nil {
		status, _ := h()
		return status
	}
	if c.st.Status().Degraded() {
		return healthStorageFull
	}
	return service.HealthOK
}

// reembedStore re-embeds, from their stored face crops, the samples and
// negatives of another backbone than bb (after a change of
// model.backbone), logging progress; resumable after a kill. Vectors
// without a crop are reported by person with the fix, never mixed in.
func reembedStore(ctx context.Context, st *store.Store, bb *infer.Backbone, emb *infer.Embedder, log *slog.Logger) error {
	start, last := time.Now(), time.Time{}
	rep, pending, err := Reembed(ctx, st, bb, emb, "", func(done, total int) {
		if done == 0 {
			log.Info("the store holds embeddings of another backbone: re-embedding them from their face crops before recognition starts",
				"backbone", bb.ID, "items", total)
		}
		if time.Since(last) >= 5*time.Second || done == total {
			last = time.Now()
			log.Info("re-embedding", "done", done, "total", total)
		}
	}, log.With("component", "reembed"))
	if err != nil {
		return fmt.Errorf("re-embed the gallery with %s: %w (it resumes where it stopped at the next start, or run edged people reembed)", bb.ID, err)
	}
	if !pending.Needed() {
		return nil // people left without crops are reported by LoadGallery
	}
	rep.NoCrop = nil // reported by LoadGallery, once
	for _, m := range rep.Messages() {
		log.Info(m)
	}
	log.Info("re-embedding done", "backbone", bb.ID, "reembedded", rep.Reembedded, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Reembed re-embeds, from their stored face crops, the samples and
// negatives of another backbone than bb: the daemon's start after a change
// of model.backbone and `edged people reembed` alike. emb is bb's embedder,
// or nil to load it from modelDir when there is work. progress (optional)
// gets (0, total) first, then each batch. The report says what was done,
// pending what there was to do (nothing: Needed() is false).
func Reembed(ctx context.Context, st *store.Store, bb *infer.Backbone, emb *infer.Embedder, modelDir string,
	progress func(done, total int), log *slog.Logger) (enroll.ReembedReport, enroll.PendingReport, error) {
	pending, err := enroll.NeedsReembed(st, bb.ID)
	if err != nil || !pending.Needed() {
		return enroll.ReembedReport{Backbone: bb.ID, NoCrop: pending.NoCrop}, pending, err
	}
	if emb == nil {
		if emb, err = infer.NewEmbedder(modelDir, infer.Options{Backbone: bb.ID, Logger: log}); err != nil {
			return enroll.ReembedReport{}, pending, startup(err)
		}
		defer emb.Close()
	}
	if progress == nil {
		progress = func(int, int) {}
	}
	progress(0, pending.Items)
	rep, err := enroll.Reembed(ctx, st, enroll.ReembedOptions{
		Backbone:     bb.ID,
		ChipFromCrop: func(crop face.Chip) (face.Chip, error) { return detect.ChipFromCrop(crop, bb.Template) },
		Embedder:     emb,
		Batch:        emb.Options().MaxBatch,
		Progress:     progress,
		Logger:       log,
	})
	return rep, pending, err
}

// Close releases everything OpenCore opened, in reverse order.
func (c *Core) Close() {
	if c.emb != nil {
		if err := c.emb.Close(); err != nil && !errors.Is(err, infer.ErrClosed) {
			c.log.Error("closing the embedder", "err", err)
		}
	}
	if c.det != nil {
		_ = c.det.Close()
	}
	if c.st != nil {
		if err := c.st.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			c.log.Error("closing the store", "err", err)
		}
	}
	if c.tmpDir != "" {
		_ = os.RemoveAll(c.tmpDir)
	}
}

// Gallery is the enrolled people.
func (c *Core) Gallery() *gallery.Gallery { return c.g }

// Enroller enrolls people into the store and the gallery.
func (c *Core) Enroller() *enroll.Enroller { return c.en }

// setConfig replaces the configuration new cameras are built with (reload).
func (c *Core) setConfig(cfg config.Config) {
	c.mu.Lock()
	c.cfg = cfg
	c.mu.Unlock()
}

// CameraStats implements service.Cameras.
func (c *Core) CameraStats() []pipeline.CameraStats {
	c.mu.Lock()
	p := c.pipe
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Stats()
}

// TrackEmbeddings implements service.Cameras.
func (c *Core) TrackEmbeddings(camera string, track uint64) ([][]float32, bool) {
	c.mu.Lock()
	r := c.recs[camera]
	c.mu.Unlock()
	if r == nil {
		return nil, false
	}
	return r.TrackEmbeddings(track)
}

// embedder adapts infer.Embedder for the pipeline: a closed embedder
// stops the camera (fatal) instead of failing frame after frame.
type embedder struct{ e *infer.Embedder }

func (e embedder) Embed(chips []face.Chip) ([]face.Embedding, error) {
	out, err := e.e.Embed(chips)
	if errors.Is(err, infer.ErrClosed) {
		return nil, pipeline.Fatal(err)
	}
	return out, err
}

// memoryUnknowns clusters unknown faces without storing them (a replay on
// a read-only store): numbers count from the store's highest one.
type memoryUnknowns struct {
	mu   sync.Mutex
	u    *gallery.Unknowns
	next uint64
}

func (m *memoryUnknowns) AssignUnknown(camera string, faces []gallery.TrackFace) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.next == 0 {
		m.next = 1
		for _, id := range m.u.List() {
			m.next = max(m.next, id.Number+1)
		}
	}
	ufs := make([]gallery.UnknownFace, len(faces))
	for i, f := range faces {
		ufs[i] = gallery.UnknownFace{Embedding: f.Embedding, Quality: f.Quality, Time: f.Time, Camera: camera}
	}
	id, _, ok, err := m.u.Observe(ufs, func() (uint64, error) { n := m.next; m.next++; return n, nil })
	if err != nil || !ok {
		return "", err
	}
	return id.ID, nil
}

// cameraMode says how a camera's frames are taken.
type cameraMode struct {
	fast       bool   // files as fast as the pipeline goes (replay, bench)
	mediaClock bool   // event times are media times (replay)
	source     string // put into events (replay)
}

// newCamera opens a camera's capture and builds its chain: capture ->
// detect -> recognize (-> outputs). onEvent receives the capture's
// outages as MQTT payloads.
func (c *Core) newCamera(cs config.CameraSettings, mode cameraMode, outputs []pipeline.FrameOutput, onEvent func(pipeline.Event)) (pipeline.Camera, *pipeline.Recognizer, error) {
	c.mu.Lock()
	cfg := c.cfg
	c.mu.Unlock()
	copts := capture.Options{Width: cs.Width, Height: cs.Height, FPS: cs.FPS, Loop: cs.Loop,
		Logger: c.log.With("component", "capture", "camera", cs.Name)}
	if mode.fast {
		copts.Mode = capture.ModeFast
	}
	if onEvent != nil {
		copts.OnEvent = func(e capture.Event) {
			if p, ok := cameraPayload(cs.Name, e); ok {
				for _, pl := range p {
					onEvent(pipeline.Event{Camera: cs.Name, Payload: pl})
				}
			}
		}
	}
	src, err := capture.Open(cs.URL, copts)
	if err != nil {
		return pipeline.Camera{}, nil, fmt.Errorf("camera %s: %w", cs.Name, err)
	}
	threshold := cs.Threshold
	if threshold == cfg.Recognition.Threshold {
		threshold = 0 // the gallery applies the global one
	}
	r := cfg.Recognition
	ropts := pipeline.RecognizerOptions{
		Camera: cs.Name, Gallery: c.g, Embedder: embedder{c.emb},
		Tracker: gallery.TrackerOptions{Space: c.bb.Space, MinQuality: float32(cs.MinQuality), Decide: r.Decide, MaxEmbeds: r.MaxEmbeds,
			Recheck: r.Recheck, Timeout: r.TrackTimeout},
		Threshold: threshold, Margin: r.Margin,
		MediaClock: mode.mediaClock, Source: mode.source,
		Model: c.g.ProjectorID, Metrics: c.recm, Logger: c.log.With("camera", cs.Name),
	}
	if cfg.UnknownClustersEnabled() {
		if c.memUnknowns != nil {
			ropts.Unknowns = c.memUnknowns
		} else {
			ropts.Unknowns = c.svc
		}
	}
	if !c.readOnly {
		ropts.Tap = c.svc.FaceTap
	}
	if c.xp != nil {
		ropts.Experience = c.xp
	}
	rec, err := pipeline.NewRecognizer(ropts)
	if err != nil {
		_ = src.Close()
		return pipeline.Camera{}, nil, err
	}
	cam := pipeline.Camera{
		Name:   cs.Name,
		Source: &vision.CaptureSource{Src: src},
		Processors: []pipeline.Processor{
			&vision.DetectStage{Detector: c.det, MinScore: float32(cs.ScoreThreshold), MinSize: cs.MinFaceSize},
			rec,
		},
		Outputs:  outputs,
		MaxFPS:   cs.FPS,
		Lossless: mode.fast,
	}
	return cam, rec, nil
}

// urlPattern finds URLs (which may carry credentials) in error texts.
var urlPattern = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://\S+`)

// cameraPayload turns a capture event into the MQTT events: the camera
// event and the camera's retained state. Reasons never carry URLs.
func cameraPayload(camera string, e capture.Event) ([]mqtt.Payload, bool) {
	at := mqtt.At(e.Time)
	if e.Time.IsZero() {
		at = mqtt.At(time.Now())
	}
	var state, reason string
	switch e.Kind {
	case capture.EventDown:
		state = mqtt.CameraDown
		if e.Err != nil {
			reason = urlPattern.ReplaceAllString(e.Err.Error(), "<url>")
		}
	case capture.EventUp:
		state = mqtt.CameraUp
	case capture.EventEnd:
		state, reason = mqtt.CameraDown, "end of file"
	default:
		return nil, false
	}
	return []mqtt.Payload{
		mqtt.Camera{Camera: camera, State: state, Reason: reason, Time: at},
		mqtt.CameraState{Camera: camera, Status: state, Time: at},
	}, true
}
