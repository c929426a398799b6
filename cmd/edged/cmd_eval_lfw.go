package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/eval"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/infer"
)

func init() {
	registerEval("lfw", runEvalLFW)
}

// evalLFWReport is the `edged eval lfw --json` object. Rates are fractions
// in [0,1]; thresholds are Euclidean distances between raw embeddings (a
// pair is "same person" below the threshold); a threshold is null when it
// is +Inf (every pair accepted).
type evalLFWReport struct {
	Pairs              int       `json:"pairs"`
	Folds              int       `json:"folds"`
	Images             int       `json:"images"`
	NoFace             int       `json:"no_face"` // images where no face was detected (centre crop used)
	Crop               string    `json:"crop"`
	Backbone           string    `json:"backbone"`
	Distance           string    `json:"distance"` // euclidean on raw (dlib, its published convention) or L2-normalised embeddings
	Flip               bool      `json:"flip"`
	CrossValidated     bool      `json:"cross_validated"` // false: one fold, best threshold on that fold
	Accuracy           float64   `json:"accuracy"`
	AccuracyStd        float64   `json:"accuracy_std"`
	FoldAccuracies     []float64 `json:"fold_accuracies"`
	Threshold          float64   `json:"threshold"`
	TARAtFAR1          float64   `json:"tar_at_far_0.01"`
	ThresholdAtFAR1    *float64  `json:"threshold_at_far_0.01"`
	TARAtFAR01         float64   `json:"tar_at_far_0.001"`
	ThresholdAtFAR01   *float64  `json:"threshold_at_far_0.001"`
	DifferentPairs     int       `json:"different_pairs"` // FAR resolution is 1/different_pairs
	AUC                float64   `json:"auc"`
	Seconds            float64   `json:"seconds"`
	MillisecondsPerImg float64   `json:"ms_per_image"`
}

func runEvalLFW(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("eval lfw", flag.ContinueOnError)
	pairsPath := fs.String("pairs", "", "LFW pairs `FILE` (View 2 format: \"FOLDS<TAB>N\", then N matched and N mismatched pairs per fold)")
	imagesDir := fs.String("images", "", "images `DIR` holding Name/Name_NNNN.jpg (default: images/ next to the pairs file)")
	crop := fs.String("crop", cropAligned, "face chips: aligned (detect + landmarks; centre crop when no face is found) or center (fixed centre crop)")
	flip := fs.Bool("flip", false, "average each embedding with that of the mirrored chip")
	asJSON := fs.Bool("json", false, "print one JSON object")
	rocPath := fs.String("roc", "", "draw the ROC curve into `FILE.png`")
	workers := fs.Int("workers", runtime.NumCPU(), "images processed at once")
	models := fs.String("models", defaultModelDir(), "model `DIR`")
	backbone := addBackboneFlag(fs)
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, usageError("unexpected argument %q", fs.Arg(0))
	}
	bb, err := lookupBackbone(*backbone, "")
	if err != nil {
		return exitUsage, err
	}
	if *pairsPath == "" {
		return exitUsage, usageError("--pairs is required")
	}
	if *crop != cropAligned && *crop != cropCenter {
		return exitUsage, usageError("--crop %q: want aligned or center", *crop)
	}
	if *workers < 1 {
		return exitUsage, usageError("--workers must be at least 1")
	}
	if *imagesDir == "" {
		*imagesDir = filepath.Join(filepath.Dir(*pairsPath), "images")
	}
	f, err := os.Open(*pairsPath)
	if err != nil {
		return exitFailure, err
	}
	pairs, err := eval.ParseLFWPairs(f)
	f.Close()
	if err != nil {
		return exitFailure, fmt.Errorf("%s: %w", *pairsPath, err)
	}
	if st, err := os.Stat(*imagesDir); err != nil || !st.IsDir() {
		return exitFailure, fmt.Errorf("--images %s: not a directory", *imagesDir)
	}

	// Every image once, in a stable order.
	seen := map[string]bool{}
	var images []string
	for _, p := range pairs {
		for _, im := range []string{p.A, p.B} {
			if !seen[im] {
				seen[im] = true
				images = append(images, im)
			}
		}
	}
	sort.Strings(images)

	p, err := newFacePipeline(*models, bb, *crop, false, *flip, *workers, 0, newLogger(*debug, false))
	if err != nil {
		return exitStartup, err
	}
	defer p.Close()

	start := time.Now()
	embs, noFace, err := evalLFWEmbed(ctx, p, *imagesDir, images, *workers)
	if err != nil {
		return exitFailure, err
	}
	elapsed := time.Since(start)

	scores := make([]eval.VerifyScore, len(pairs))
	for i, pr := range pairs {
		scores[i] = eval.VerifyScore{Distance: pairDistance(bb, embs[pr.A], embs[pr.B]), Same: pr.Same, Fold: pr.Fold}
	}
	res, err := eval.VerifyEvaluate(scores)
	if err != nil {
		return exitFailure, err
	}
	diff := 0
	for _, pr := range pairs {
		if !pr.Same {
			diff++
		}
	}
	rep := evalLFWReport{
		Pairs: res.Pairs, Folds: res.Folds, Images: len(images), NoFace: noFace, Crop: *crop, Backbone: bb.ID, Distance: pairDistanceName(bb), Flip: *flip,
		CrossValidated: res.CrossValidated, Accuracy: res.Accuracy, AccuracyStd: res.AccuracyStd,
		FoldAccuracies: res.FoldAccuracy, Threshold: res.Threshold,
		TARAtFAR1: res.TARAtFAR1, ThresholdAtFAR1: finiteOrNil(res.ThresholdAtFAR1),
		TARAtFAR01: res.TARAtFAR01, ThresholdAtFAR01: finiteOrNil(res.ThresholdAtFAR01),
		DifferentPairs: diff, AUC: res.AUC,
		Seconds: elapsed.Seconds(), MillisecondsPerImg: elapsed.Seconds() * 1000 / float64(len(images)),
	}
	if *rocPath != "" {
		if err := writeROC(*rocPath, res.ROC); err != nil {
			return exitFailure, err
		}
	}
	if *asJSON {
		return exitOK, json.NewEncoder(os.Stdout).Encode(rep)
	}
	printLFWReport(os.Stdout, rep)
	return exitOK, nil
}

// evalLFWEmbed embeds the face of each image (relative to dir) with
// `workers` goroutines; it returns the embeddings by relative path and how
// many images had no face detected.
func evalLFWEmbed(ctx context.Context, p *facePipeline, dir string, images []string, workers int) (map[string]face.Embedding, int, error) {
	bar := newProgressBar("lfw", len(images))
	defer bar.Finish()
	var (
		mu      sync.Mutex
		embs    = make(map[string]face.Embedding, len(images))
		noFace  int
		firstEr error
		failed  int
	)
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for im := range jobs {
				f, found, err := p.centralFace(filepath.Join(dir, im))
				var e []face.Embedding
				if err == nil {
					e, err = p.emb.Embed([]face.Chip{f.Chip})
				}
				mu.Lock()
				if err != nil {
					failed++
					if firstEr == nil {
						firstEr = err
					}
				} else {
					embs[im] = e[0]
					if !found {
						noFace++
					}
				}
				mu.Unlock()
				bar.Add(1)
			}
		}()
	}
feed:
	for _, im := range images {
		select {
		case jobs <- im:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if failed > 0 {
		return nil, 0, fmt.Errorf("%d of %d images could not be used (first: %v)", failed, len(images), firstEr)
	}
	return embs, noFace, nil
}

// centralFace returns the face of an LFW-style photo: among the detected
// faces, the highest-scored one whose box contains the image centre, else
// the one whose centre is nearest to it; with no face detected (or with
// --crop center), the fixed centre crop, and found=false for the former.
func (p *facePipeline) centralFace(path string) (f face.Face, found bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return face.Face{}, false, err
	}
	img, err := detect.DecodeImage(data)
	if err != nil {
		return face.Face{}, false, fmt.Errorf("%s: %w", path, err)
	}
	defer img.Close()
	if p.det == nil {
		f, err := centerCropFace(img, p.backbone.InputSize)
		return f, true, err
	}
	faces, err := p.det.Detect(img)
	if err != nil {
		return face.Face{}, false, fmt.Errorf("%s: %w", path, err)
	}
	if len(faces) == 0 {
		f, err := centerCropFace(img, p.backbone.InputSize)
		return f, false, err
	}
	c := image.Pt(img.Cols()/2, img.Rows()/2)
	best := -1
	for i, fc := range faces {
		if c.In(fc.Box) && (best < 0 || fc.Score > faces[best].Score) {
			best = i
		}
	}
	if best < 0 {
		bestDist := math.Inf(1)
		for i, fc := range faces {
			mid := fc.Box.Min.Add(fc.Box.Max).Div(2)
			if d := math.Hypot(float64(mid.X-c.X), float64(mid.Y-c.Y)); d < bestDist {
				best, bestDist = i, d
			}
		}
	}
	return faces[best], true, nil
}

// pairDistance is the verification distance of two raw embeddings: for the
// dlib ResNet Euclidean on the raw vectors (dlib's convention, its outputs
// have norms near 1, and the figures published for it use it); for other
// backbones, whose raw outputs are not normalised (MobileFaceNet's norms
// are 60-80), Euclidean between the L2-normalised vectors.
func pairDistance(bb *infer.Backbone, a, b face.Embedding) float64 {
	if bb.ID == infer.BackboneDlib {
		return euclidean(a, b)
	}
	return euclidean(normalised(a), normalised(b))
}

// pairDistanceName names pairDistance's metric for the JSON report.
func pairDistanceName(bb *infer.Backbone) string {
	if bb.ID == infer.BackboneDlib {
		return "euclidean-raw"
	}
	return "euclidean-normalised"
}

func normalised(v face.Embedding) face.Embedding {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	n = math.Sqrt(n)
	out := make(face.Embedding, len(v))
	if n == 0 {
		return out
	}
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out
}

func euclidean(a, b face.Embedding) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

func finiteOrNil(x float64) *float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return nil
	}
	return &x
}

func writeROC(path string, roc []eval.VerifyROCPoint) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--roc: %w", err)
	}
	if err := eval.VerifyROCPNG(f, roc); err != nil {
		f.Close()
		return fmt.Errorf("--roc %s: %w", path, err)
	}
	return f.Close()
}

func printLFWReport(w io.Writer, r evalLFWReport) {
	flip := "off"
	if r.Flip {
		flip = "on"
	}
	fmt.Fprintf(w, "LFW verification: %d pairs in %d fold(s), %d images (crop %s, flip %s)\n", r.Pairs, r.Folds, r.Images, r.Crop, flip)
	if r.CrossValidated {
		fmt.Fprintf(w, "accuracy   %.2f%% +/- %.2f%% (%d-fold cross-validation: each fold at the threshold best on the others)\n",
			100*r.Accuracy, 100*r.AccuracyStd, r.Folds)
		fmt.Fprintf(w, "threshold  %.4f (mean over folds)\n", r.Threshold)
	} else {
		fmt.Fprintf(w, "accuracy   %.2f%% at the best threshold (single fold: chosen on the same pairs, not cross-validated)\n", 100*r.Accuracy)
		fmt.Fprintf(w, "threshold  %.4f (best)\n", r.Threshold)
	}
	thr := func(t *float64) string {
		if t == nil {
			return "any"
		}
		return fmt.Sprintf("%.4f", *t)
	}
	fmt.Fprintf(w, "TAR        %.2f%% at FAR 1%% (threshold %s), %.2f%% at FAR 0.1%% (threshold %s); %d different-person pairs, FAR resolution %.2f%%\n",
		100*r.TARAtFAR1, thr(r.ThresholdAtFAR1), 100*r.TARAtFAR01, thr(r.ThresholdAtFAR01), r.DifferentPairs, 100/float64(max(r.DifferentPairs, 1)))
	fmt.Fprintf(w, "AUC        %.5f\n", r.AUC)
	if r.Crop == cropAligned {
		fmt.Fprintf(w, "no face    %d of %d images (centre crop used for those)\n", r.NoFace, r.Images)
	}
	fmt.Fprintf(w, "time       %.1f s, %.1f ms per image\n", r.Seconds, r.MillisecondsPerImg)
}
