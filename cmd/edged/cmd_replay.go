package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/edged-dev/edged/internal/procmem"
	"github.com/edged-dev/edged/internal/progress"

	"github.com/edged-dev/edged/agent"
	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/pipeline/vision"
)

func init() {
	register(&Command{
		Name:  "replay",
		Usage: "VIDEO [--config FILE] [--data DIR] [--events OUT.jsonl|-] [--annotate OUT.mp4] [--broker URL] [--camera NAME] [--fps N]",
		Short: "run the recognition pipeline over a recorded video as fast as it goes: events, annotated video, summary",
		Run:   runReplay,
	})
}

// replaySummary is what `edged replay` reports at the end.
type replaySummary struct {
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

func runReplay(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	var cf configFlags
	fs.StringVar(&cf.file, "config", "", "configuration `file` (detection and recognition settings, data_dir)")
	fs.StringVar(&cf.data, "data", "", "data `directory` with the enrolled people (opened read-only)")
	events := fs.String("events", "", "write the events as JSON lines to `FILE` (- for stdout)")
	annotate := fs.String("annotate", "", "write the video with boxes, names and confidences to `FILE` (.mp4, .mkv or .avi)")
	broker := fs.String("broker", "", "also publish the events to the MQTT broker at `URL` (tcp://host:1883)")
	device := fs.String("device", "", "device `id` for topics (default: the config's or the host name)")
	camName := fs.String("camera", "replay", "camera `name` in the events")
	fpsCap := fs.Float64("fps", 0, "process at most `N` frames per second of video (0: every frame)")
	jsonSummary := fs.Bool("json", false, "print the summary as JSON")
	quiet := fs.Bool("quiet", false, "no progress bar, no event log")
	cf.addBackboneVar(fs)
	debug := fs.Bool("debug", false, "debug logging")
	video, rest := splitPositional(args)
	if err := fs.Parse(rest); err != nil {
		return exitUsage, err
	}
	if video == "" && fs.NArg() > 0 {
		video = fs.Arg(0)
	}
	if video == "" {
		return exitUsage, usageError("missing VIDEO")
	}
	if fs.NArg() > 1 || (fs.NArg() == 1 && fs.Arg(0) != video) {
		return exitUsage, usageError("one VIDEO at a time")
	}
	if *fpsCap < 0 {
		return exitUsage, usageError("--fps must be >= 0")
	}
	if _, err := config.ParseCameraFlag(*camName + "=x"); err != nil || *camName == "" {
		return exitUsage, usageError("--camera %q: use letters, digits, '-' and '_'", *camName)
	}
	cf.device = *device
	cf.http = "off"
	cfg, dataDir, err := cf.load()
	if err != nil {
		return exitCodeOf(err), err
	}
	cfg.Cameras = nil
	level := "warn"
	if *debug {
		level = "debug"
	}
	cfg.Log.Level = level
	log, _ := agent.NewLogger(cfg.Log, *debug)

	sum := replaySummary{Video: video, Events: map[string]int{}, EventsFile: *events, Annotated: *annotate}
	if st, err := os.Stat(video); err != nil {
		return exitFailure, fmt.Errorf("%s: not a video file: %w", video, err)
	} else if st.IsDir() {
		return exitFailure, fmt.Errorf("%s: not a video file: it is a directory", video)
	}
	c, err := agent.OpenCore(cfg, log, agent.CoreOptions{DataDir: dataDir, ModelDir: modelDirOf(cfg), ReadOnly: true, DetectWorkers: 1, Version: version})
	if err != nil {
		return exitCodeOf(err), err
	}
	defer c.Close()

	topics, err := mqtt.NewTopics(cfg.MQTT.TopicPrefix, cfg.Device)
	if err != nil {
		return exitStartup, agent.StartupError{Err: err}
	}
	var outputs []pipeline.EventOutput
	if *events != "" {
		var w io.Writer = os.Stdout
		if *events != "-" {
			f, err := os.Create(*events)
			if err != nil {
				return exitFailure, fmt.Errorf("events: %w", err)
			}
			w = f
		}
		outputs = append(outputs, pipeline.NewJSONLines(w, topics.Base))
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
	if !*quiet && *events != "-" && isTerminal(os.Stderr) {
		outputs = append(outputs, pipeline.LogOutput{Log: newLogger(false, false)})
	}
	var pub *agent.Publisher
	if *broker != "" {
		if pub, err = agent.StartPublisher(*broker, cfg, version, log); err != nil {
			return exitFailure, err
		}
		outputs = append(outputs, pub)
		sum.PublishedTo = agent.Redact(*broker)
	}

	cs := config.CameraSettings{Name: *camName, URL: video, FPS: *fpsCap,
		Threshold: cfg.Recognition.Threshold, MinFaceSize: cfg.Detect.MinFaceSize,
		ScoreThreshold: cfg.Detect.ScoreThreshold, MinQuality: cfg.Recognition.MinQuality}
	var frameOuts []pipeline.FrameOutput
	var ann *vision.Annotator
	if *annotate != "" {
		if ann, err = vision.NewAnnotator(*annotate, 0); err != nil {
			return exitUsage, usageError("%v", err)
		}
		frameOuts = append(frameOuts, ann)
	}
	counter := &frameCounter{}
	frameOuts = append(frameOuts, counter)
	cam, _, err := c.NewCamera(cs, agent.CameraMode{Fast: true, MediaClock: true, Source: video}, frameOuts, nil)
	if err != nil {
		return exitFailure, err
	}
	if vs, ok := cam.Source.(*vision.CaptureSource).Src.(interface {
		FrameCount() int
		FPS() float64
	}); ok {
		if ann != nil {
			ann.FPS = vs.FPS()
		}
		if !*quiet {
			counter.bar = newProgressBar("replay", vs.FrameCount())
		}
	}
	sum.StartupS = time.Since(processStart).Seconds()
	start := time.Now()
	runErr := pipeline.Run(ctx, pipeline.Options{Queue: cfg.Pipeline.FaceQueue, EventQueue: cfg.Pipeline.EventQueue,
		Logger: log, Metrics: c.Metrics()}, []pipeline.Camera{cam}, outputs...)
	counter.bar.Finish()
	wall := time.Since(start)
	if pub != nil {
		if err := pub.Finish(); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	sum.Frames = counter.n
	sum.MediaS = counter.last.Seconds()
	sum.WallS = wall.Seconds()
	if wall > 0 {
		sum.FPS = float64(counter.n) / wall.Seconds()
	}
	faces, embedded, tracks := recognitionTotals(c, *camName)
	sum.Faces, sum.Embedded, sum.Tracks = faces, embedded, tracks
	for p := range people {
		sum.People = append(sum.People, p)
	}
	sort.Strings(sum.People)
	if sum.People == nil {
		sum.People = []string{}
	}
	m, _ := procmem.Read()
	sum.RSSAnonMiB, sum.RSSFileMiB, sum.PeakRSSMiB = m.AnonMiB, m.FileMiB, m.PeakMiB
	printReplaySummary(sum, *jsonSummary, *events == "-")
	if runErr != nil && ctx.Err() == nil {
		return exitFailure, runErr
	}
	if ctx.Err() != nil {
		return exitFailure, errors.New("interrupted")
	}
	return exitOK, nil
}

// splitPositional pulls a leading non-flag argument out of args, so the
// VIDEO may come before the flags (`edged replay v.mp4 --events e.jsonl`).
func splitPositional(args []string) (string, []string) {
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		return args[0], args[1:]
	}
	return "", args
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

// recognitionTotals reads a camera's recognition counters.
func recognitionTotals(c *agent.Core, camera string) (faces, embedded, tracks uint64) {
	return c.Recognition().Totals(camera)
}

func printReplaySummary(s replaySummary, asJSON, toStderr bool) {
	w := io.Writer(os.Stdout)
	if toStderr {
		w = os.Stderr
	}
	if asJSON {
		writeJSON(w, s)
		return
	}
	fmt.Fprintf(w, "replayed %s: %d frames (%.1f s of video) in %.1f s: %.1f fps\n", filepath.Base(s.Video), s.Frames, s.MediaS, s.WallS, s.FPS)
	fmt.Fprintf(w, "  faces %d (embedded %d), tracks %d, recognized %d: %v, unknown %d\n",
		s.Faces, s.Embedded, s.Tracks, len(s.People), s.People, s.Unknown)
	fmt.Fprintf(w, "  start-up %.2f s, RSS anon %.0f MiB + file %.0f MiB (peak %.0f MiB)\n", s.StartupS, s.RSSAnonMiB, s.RSSFileMiB, s.PeakRSSMiB)
	if s.EventsFile != "" && s.EventsFile != "-" {
		fmt.Fprintf(w, "  events: %s\n", s.EventsFile)
	}
	if s.Annotated != "" {
		fmt.Fprintf(w, "  annotated video: %s\n", s.Annotated)
	}
	if s.PublishedTo != "" {
		fmt.Fprintf(w, "  published to %s\n", s.PublishedTo)
	}
}
