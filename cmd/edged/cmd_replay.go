package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/edged-dev/edged/agent"
	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/internal/progress"
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

	o := agent.ReplayOptions{Video: video, Camera: *camName, FPS: *fpsCap, Broker: *broker, Started: processStart}
	if *events != "" {
		o.Events = os.Stdout
		if *events != "-" {
			f, err := os.Create(*events)
			if err != nil {
				return exitFailure, fmt.Errorf("events: %w", err)
			}
			o.Events = f
		}
	}
	if *annotate != "" {
		if o.Annotate, err = vision.NewAnnotator(*annotate, 0); err != nil {
			return exitUsage, usageError("%v", err)
		}
	}
	if !*quiet {
		if *events != "-" && isTerminal(os.Stderr) {
			o.EventLog = newLogger(false, false)
		}
		o.Progress = func(frames int) *progress.Bar { return newProgressBar("replay", frames) }
	}
	sum, runErr := c.Replay(ctx, o)
	if sum == nil {
		return exitCodeOf(runErr), runErr
	}
	sum.EventsFile, sum.Annotated = *events, *annotate
	printReplaySummary(*sum, *jsonSummary, *events == "-")
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

func printReplaySummary(s agent.ReplaySummary, asJSON, toStderr bool) {
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
