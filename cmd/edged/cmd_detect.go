package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/internal/facefile"
)

func init() {
	register(&Command{
		Name:  "detect",
		Usage: "[--annotate DIR] [--chips DIR [--backbone ID]] [--backend dnn|haar] [flags] FILE...",
		Short: "detect, align and rate faces in image files (JSON lines)",
		Run:   runDetect,
	})
}

// detectFaceJSON is one face of `edged detect` output.
type detectFaceJSON struct {
	Box       [4]int       `json:"box"` // x, y, w, h
	Score     float32      `json:"score"`
	Landmarks [][2]float32 `json:"landmarks"`      // RightEye, LeftEye, NoseTip, MouthRight, MouthLeft; [] when none
	Quality   float32      `json:"quality"`        // overall quality score 0..1, as in `edged embed`
	Detail    face.Quality `json:"quality_detail"` // its parts: size, blur, yaw, issue
	Aligned   bool         `json:"aligned"`
}

// detectLineJSON is one line of `edged detect` output: one per file.
type detectLineJSON struct {
	File  string           `json:"file"`
	Faces []detectFaceJSON `json:"faces"`
	Error string           `json:"error,omitempty"`
}

func runDetect(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("detect", flag.ContinueOnError)
	models := fs.String("models", defaultModelDir(), "model directory")
	backend := fs.String("backend", detect.BackendDNN, "face detector: dnn (RFB-320 ONNX) or haar (OpenCV cascade)")
	annotate := fs.String("annotate", "", "write each image with boxes and landmarks drawn into `DIR` (PNG)")
	chips := fs.String("chips", "", "write each aligned chip (the --backbone's template: 112x112 ArcFace or 150x150 dlib) into `DIR` (PNG)")
	backbone := addBackboneFlag(fs)
	score := fs.Float64("score", 0, "minimum detector score (default 0.7)")
	nmsThr := fs.Float64("nms", 0, "NMS IoU threshold (default 0.3)")
	minFace := fs.Int("min-face", 0, "smallest face, sqrt(w*h) in pixels (default 20)")
	maxFace := fs.Int("max-face", 0, "largest face in pixels (default: no limit)")
	noLandmarks := fs.Bool("no-landmarks", false, "skip landmarks: chips are centre crops (aligned=false)")
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() == 0 {
		return exitUsage, usageError("no FILE given")
	}
	bb, err := lookupBackbone(*backbone, "")
	if err != nil {
		return exitUsage, err
	}
	opts := detect.DefaultOptions(*models)
	opts.Template = bb.Template
	opts.Backend = *backend
	opts.ScoreThreshold = float32(*score)
	opts.NMSThreshold = float32(*nmsThr)
	opts.MinFace, opts.MaxFace = *minFace, *maxFace
	opts.Landmarks = !*noLandmarks
	opts.Logger = newLogger(*debug, false)
	det, err := detect.New(opts)
	if err != nil {
		return exitStartup, err
	}
	defer det.Close()
	for _, dir := range []string{*annotate, *chips} {
		if dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return exitStartup, err
			}
		}
	}

	enc := json.NewEncoder(os.Stdout)
	failed := 0
	used := map[string]int{} // output base names, to keep them unique
	for _, path := range fs.Args() {
		if ctx.Err() != nil {
			return exitFailure, ctx.Err()
		}
		line := detectLineJSON{File: path, Faces: []detectFaceJSON{}}
		name := facefile.OutputName(path, used)
		faces, err := facefile.DetectAndWrite(det, path, name, *annotate, *chips)
		if err != nil {
			line.Error = err.Error()
			failed++
		}
		for _, f := range faces {
			line.Faces = append(line.Faces, faceJSON(f))
		}
		if err := enc.Encode(line); err != nil {
			return exitFailure, err
		}
	}
	if failed > 0 {
		return exitFailure, fmt.Errorf("%d of %d files failed", failed, fs.NArg())
	}
	return exitOK, nil
}

func faceJSON(f face.Face) detectFaceJSON {
	j := detectFaceJSON{
		Box:       [4]int{f.Box.Min.X, f.Box.Min.Y, f.Box.Dx(), f.Box.Dy()},
		Score:     round3(f.Score),
		Landmarks: [][2]float32{},
		Quality:   round3(f.Quality.Score),
		Detail:    f.Quality,
		Aligned:   f.Aligned,
	}
	for _, p := range f.Landmarks {
		j.Landmarks = append(j.Landmarks, [2]float32{round3(p.X), round3(p.Y)})
	}
	j.Detail.Score, j.Detail.Size = round3(j.Detail.Score), round3(j.Detail.Size)
	j.Detail.Blur, j.Detail.Yaw = round3(j.Detail.Blur), round3(j.Detail.Yaw)
	return j
}

func round3(x float32) float32 { return float32(int64(float64(x)*1000+0.5*sign(x))) / 1000 }

func sign(x float32) float64 {
	if x < 0 {
		return -1
	}
	return 1
}
