package eval

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/edged-dev/edged/face"
)

// The LFW verification driver (`edged eval lfw`): every image of the pairs
// embedded once through an LFWEmbed (the command passes the real detector
// and network), a distance per pair, then VerifyEvaluate.

// LFWReport is the `edged eval lfw --json` object. Rates are fractions
// in [0,1]; thresholds are Euclidean distances between raw embeddings (a
// pair is "same person" below the threshold); a threshold is null when it
// is +Inf (every pair accepted).
type LFWReport struct {
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

// LFWEmbed returns the embedding of the face of one image file, and
// whether a face was found (false: a fallback crop was embedded).
type LFWEmbed func(path string) (emb face.Embedding, found bool, err error)

// LFWOptions configure LFWVerify.
type LFWOptions struct {
	// Images is the folder holding Name/Name_NNNN.jpg.
	Images string
	// RawDistance compares raw embeddings (the dlib ResNet's convention:
	// its outputs have norms near 1, and the figures published for it use
	// it); otherwise L2-normalised ones (MobileFaceNet's raw norms are
	// 60-80).
	RawDistance bool
	// Crop, Backbone and Flip are recorded in the report.
	Crop, Backbone string
	Flip           bool
	// Workers embed images at once. Default 1.
	Workers int
	// Progress is called after each image, with (done, total), one call at
	// a time.
	Progress func(done, total int)
}

// LFWVerify embeds every image of the pairs once and evaluates the
// protocol; it returns the report and the ROC curve.
func LFWVerify(ctx context.Context, pairs []LFWPair, embed LFWEmbed, o LFWOptions) (LFWReport, []VerifyROCPoint, error) {
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

	start := time.Now()
	embs, noFace, err := lfwEmbedAll(ctx, embed, o.Images, images, max(1, o.Workers), o.Progress)
	if err != nil {
		return LFWReport{}, nil, err
	}
	elapsed := time.Since(start)

	scores := make([]VerifyScore, len(pairs))
	for i, pr := range pairs {
		scores[i] = VerifyScore{Distance: pairDistance(o.RawDistance, embs[pr.A], embs[pr.B]), Same: pr.Same, Fold: pr.Fold}
	}
	res, err := VerifyEvaluate(scores)
	if err != nil {
		return LFWReport{}, nil, err
	}
	diff := 0
	for _, pr := range pairs {
		if !pr.Same {
			diff++
		}
	}
	rep := LFWReport{
		Pairs: res.Pairs, Folds: res.Folds, Images: len(images), NoFace: noFace, Crop: o.Crop, Backbone: o.Backbone, Distance: pairDistanceName(o.RawDistance), Flip: o.Flip,
		CrossValidated: res.CrossValidated, Accuracy: res.Accuracy, AccuracyStd: res.AccuracyStd,
		FoldAccuracies: res.FoldAccuracy, Threshold: res.Threshold,
		TARAtFAR1: res.TARAtFAR1, ThresholdAtFAR1: finiteOrNil(res.ThresholdAtFAR1),
		TARAtFAR01: res.TARAtFAR01, ThresholdAtFAR01: finiteOrNil(res.ThresholdAtFAR01),
		DifferentPairs: diff, AUC: res.AUC,
		Seconds: elapsed.Seconds(), MillisecondsPerImg: elapsed.Seconds() * 1000 / float64(len(images)),
	}
	return rep, res.ROC, nil
}

// lfwEmbedAll embeds the face of each image (relative to dir) with
// `workers` goroutines; it returns the embeddings by relative path and how
// many images had no face detected.
func lfwEmbedAll(ctx context.Context, embed LFWEmbed, dir string, images []string, workers int, progress func(done, total int)) (map[string]face.Embedding, int, error) {
	var (
		mu      sync.Mutex
		embs    = make(map[string]face.Embedding, len(images))
		noFace  int
		firstEr error
		failed  int
		done    int
	)
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for im := range jobs {
				e, found, err := embed(filepath.Join(dir, im))
				mu.Lock()
				if err != nil {
					failed++
					if firstEr == nil {
						firstEr = err
					}
				} else {
					embs[im] = e
					if !found {
						noFace++
					}
				}
				done++
				if progress != nil {
					progress(done, len(images))
				}
				mu.Unlock()
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

// pairDistance is the verification distance of two raw embeddings:
// Euclidean on the raw vectors, or between the L2-normalised vectors.
func pairDistance(raw bool, a, b face.Embedding) float64 {
	if raw {
		return euclidean(a, b)
	}
	return euclidean(normalised(a), normalised(b))
}

// pairDistanceName names pairDistance's metric for the JSON report.
func pairDistanceName(raw bool) string {
	if raw {
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

// WriteROCFile draws the ROC curve into a PNG file.
func WriteROCFile(path string, roc []VerifyROCPoint) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--roc: %w", err)
	}
	if err := VerifyROCPNG(f, roc); err != nil {
		f.Close()
		return fmt.Errorf("--roc %s: %w", path, err)
	}
	return f.Close()
}

// WriteText writes the report for a terminal; aligned says whether the
// chips were aligned (the no-face line only means something then).
func (r LFWReport) WriteText(w io.Writer, aligned bool) {
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
	if aligned {
		fmt.Fprintf(w, "no face    %d of %d images (centre crop used for those)\n", r.NoFace, r.Images)
	}
	fmt.Fprintf(w, "time       %.1f s, %.1f ms per image\n", r.Seconds, r.MillisecondsPerImg)
}
