package agent

// replay.go runs the daemon's chain over a recorded video as fast as it
// goes (edged replay): every frame, event times in media time.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/internal/procmem"
	"github.com/edged-dev/edged/internal/progress"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/pipeline/vision"
)

// ReplayOptions configure Core.Replay.
type ReplayOptions struct {
	Video  string  // the video file
	Camera string  // camera name in the events (default "replay")
	FPS    float64 // frames per second of video processed at most (0: all)
	// Events receives the events as JSON lines (nil: none).
	Events io.Writer
	// Annotate writes the annotated video (nil: none); its FPS is set to
	// the video's.
	Annotate *vision.Annotator
	// Broker, when set, is an MQTT broker URL the events are also
	// published to; Replay waits for its acknowledgements.
	Broker string
	// EventLog, when set, logs each event (a terminal's live view).
	EventLog *slog.Logger
	// Progress, when set, returns a progress bar for the video's frames.
	Progress func(frames int) *progress.Bar
	// Started is when the process started (ReplaySummary.StartupS).
	Started time.Time
}

// ReplaySummary is what a replay saw (edged replay --json).
type ReplaySummary struct {
	Video       string         `json:"video"`
	Frames      uint64         `json:"frames"`
	MediaS      float64        `json:"media_s"`
	WallS       float64        `json:"wall_s"`
	FPS         float64        `json:"fps"` // processed frames per wall-clock second
	Faces       uint64         `json:"faces"`
	Embedded    uint64         `json:"embedded"`
	Tracks      uint64         `json:"tracks"`
	People      []string       `json:"people"` // recognized, by name
	Unknown     int            `json:"unknown"`
	Events      map[string]int `json:"events"`
	EventsFile  string         `json:"events_file,omitempty"`
	Annotated   string         `json:"annotated,omitempty"`
	StartupS    float64        `json:"startup_s"`
	RSSAnonMiB  float64        `json:"rss_anon_mib"`
	RSSFileMiB  float64        `json:"rss_file_mib"`
	PeakRSSMiB  float64        `json:"peak_rss_mib"`
	PublishedTo string         `json:"published_to,omitempty"`
}

// Replay runs one camera's chain over o.Video with the core's
// configuration, every frame (no drops), until the video ends or ctx is
// cancelled. A nil summary means the replay could not start (the error
// says why); otherwise the error is the run's (a truncated file, the
// broker's missing acknowledgements), with what it saw so far.
func (c *Core) Replay(ctx context.Context, o ReplayOptions) (*ReplaySummary, error) {
	if o.Camera == "" {
		o.Camera = "replay"
	}
	cfg := c.cfg
	sum := &ReplaySummary{Video: o.Video, Events: map[string]int{}}
	topics, err := mqtt.NewTopics(cfg.MQTT.TopicPrefix, cfg.Device)
	if err != nil {
		return nil, startup(err)
	}
	var outputs []pipeline.EventOutput
	if o.Events != nil {
		outputs = append(outputs, pipeline.NewJSONLines(o.Events, topics.Base))
	}
	var mu sync.Mutex
	people := map[string]bool{}
	outputs = append(outputs, pipeline.Tee(func(e pipeline.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch p := e.Payload.(type) {
		case mqtt.Recognized:
			people[p.Name] = true
			sum.Events[mqtt.TypeRecognized]++
		case mqtt.Unknown:
			sum.Unknown++
			sum.Events[mqtt.TypeUnknown]++
		case mqtt.Camera:
			sum.Events[mqtt.TypeCamera]++
		}
	}))
	if o.EventLog != nil {
		outputs = append(outputs, pipeline.LogOutput{Log: o.EventLog})
	}
	var pub *publisher
	if o.Broker != "" {
		if pub, err = startPublisher(o.Broker, cfg, c.version, c.log); err != nil {
			return nil, err
		}
		outputs = append(outputs, pub)
		sum.PublishedTo = redact(o.Broker)
	}

	cs := config.CameraSettings{Name: o.Camera, URL: o.Video, FPS: o.FPS,
		Threshold: cfg.Recognition.Threshold, MinFaceSize: cfg.Detect.MinFaceSize,
		ScoreThreshold: cfg.Detect.ScoreThreshold, MinQuality: cfg.Recognition.MinQuality}
	var frameOuts []pipeline.FrameOutput
	if o.Annotate != nil {
		frameOuts = append(frameOuts, o.Annotate)
	}
	counter := &frameCounter{}
	frameOuts = append(frameOuts, counter)
	cam, _, err := c.newCamera(cs, cameraMode{fast: true, mediaClock: true, source: o.Video}, frameOuts, nil)
	if err != nil {
		return nil, err
	}
	if vs, ok := cam.Source.(*vision.CaptureSource).Src.(interface {
		FrameCount() int
		FPS() float64
	}); ok {
		if o.Annotate != nil {
			o.Annotate.FPS = vs.FPS()
		}
		if o.Progress != nil {
			counter.bar = o.Progress(vs.FrameCount())
		}
	}
	sum.StartupS = time.Since(o.Started).Seconds()
	start := time.Now()
	runErr := pipeline.Run(ctx, pipeline.Options{Queue: cfg.Pipeline.FaceQueue, EventQueue: cfg.Pipeline.EventQueue,
		Logger: c.log, Metrics: c.reg}, []pipeline.Camera{cam}, outputs...)
	counter.bar.Finish()
	wall := time.Since(start)
	if pub != nil {
		if err := pub.finish(); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	sum.Frames = counter.n
	sum.MediaS = counter.last.Seconds()
	sum.WallS = wall.Seconds()
	if wall > 0 {
		sum.FPS = float64(counter.n) / wall.Seconds()
	}
	sum.Faces, sum.Embedded, sum.Tracks = c.recm.Totals(o.Camera)
	for p := range people {
		sum.People = append(sum.People, p)
	}
	sort.Strings(sum.People)
	if sum.People == nil {
		sum.People = []string{}
	}
	m, _ := procmem.Read()
	sum.RSSAnonMiB, sum.RSSFileMiB, sum.PeakRSSMiB = m.AnonMiB, m.FileMiB, m.PeakMiB
	return sum, runErr
}

// frameCounter counts processed frames (progress and summary).
type frameCounter struct {
	n    uint64
	last time.Duration
	bar  *progress.Bar
}

func (f *frameCounter) Name() string { return "count" }

func (f *frameCounter) WriteFrame(fr *pipeline.Frame) error {
	f.n++
	f.last = fr.MediaTime
	f.bar.Add(1)
	return nil
}
