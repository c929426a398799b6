package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/eval"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/store"
)

func init() { registerEval("fewshot", runEvalFewshot) }

// fewshotFinetune, when set (by the fine-tune side, in its own file), adds
// `--finetune` to `edged eval fewshot`: after the enrollments of each shots
// setting it runs the on-device fine-tune on run.Store exactly as the
// daemon would, and returns the figures with the fine-tuned head (score
// them with run.Score on a gallery switched to the new head) and the
// guard's decision ("activated" or "rejected: <reason>").
var fewshotFinetune func(ctx context.Context, run *fewshotRun) (finetuned eval.FewShotResult, guard string, err error)

// fewshotEntry is one element of "results": the frozen figures, plus the
// fine-tuned ones with --finetune.
type fewshotEntry struct {
	eval.FewShotResult
	Finetuned *eval.FewShotResult `json:"finetuned,omitempty"`
	Guard     string              `json:"guard,omitempty"`
}

type fewshotReportJSON struct {
	Backbone  string `json:"backbone"`
	People    int    `json:"people"`
	Strangers int    `json:"strangers"`
	// SeenStrangers (--seen-strangers) is how many of the strangers the
	// device saw before the fine-tune (their faces went into unknown-face
	// clusters, none is a probe); the other strangers are the probes.
	SeenStrangers int            `json:"seen_strangers,omitempty"`
	Results       []fewshotEntry `json:"results"`
}

// fewshotImage is one image of the evaluation set, with its main face
// embedded once (nil Raw: no face found).
type fewshotImage struct {
	Person, Path string
	Raw          []float32
	Quality      float32 // the main face's quality score
	Err          string
}

// fewshotProbe is a probe image: Truth is "" for a stranger.
type fewshotProbe struct {
	Truth string
	Raw   []float32 // nil: no face
}

// fewshotRun is one shots setting after its enrollments: the throw-away
// store and gallery, and the probes.
type fewshotRun struct {
	Shots    int
	Store    *store.Store
	Gallery  *gallery.Gallery
	Enroller *enroll.Enroller
	// IDs maps person folder names to enrolled person ids.
	IDs     map[string]string
	Known   []fewshotProbe
	Unknown []fewshotProbe
	// Refused counts enrollment images refused (then replaced by the
	// person's next image).
	Refused int
	// Seen are the images of the strangers the device saw before (not
	// probes): seeFewshotStrangers files them as unknown faces.
	Seen []*fewshotImage
	// Backbone is the network the faces were embedded with (its Space
	// shapes the gallery and unknown clustering; its Dim the fine-tune).
	Backbone *infer.Backbone
	Logger   *slog.Logger
}

// Score matches every probe against g and computes the figures.
func (r *fewshotRun) Score(g *gallery.Gallery) (eval.FewShotResult, []eval.FewShotConfusion, error) {
	match := func(ps []fewshotProbe, ids map[string]string) ([]eval.FewShotProbe, error) {
		out := make([]eval.FewShotProbe, 0, len(ps))
		for _, p := range ps {
			fp := eval.FewShotProbe{Truth: ids[p.Truth]}
			if p.Truth != "" && fp.Truth == "" {
				fp.Truth = "?" + p.Truth // enrolled nobody: can never be right
			}
			if p.Raw != nil {
				m, err := g.Match(p.Raw)
				if err != nil {
					return nil, err
				}
				fp.Predicted, fp.Distance = m.PersonID, m.Distance
				fp.Accepted = m.Known
				fp.Eligible = m.Known || m.Reason == gallery.ReasonFar
			}
			out = append(out, fp)
		}
		return out, nil
	}
	k, err := match(r.Known, r.IDs)
	if err != nil {
		return eval.FewShotResult{}, nil, err
	}
	u, err := match(r.Unknown, r.IDs)
	if err != nil {
		return eval.FewShotResult{}, nil, err
	}
	return eval.FewShotScore(r.Shots, k, u, g.Threshold()), eval.FewShotConfusions(k, u), nil
}

func runEvalFewshot(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("eval fewshot", flag.ContinueOnError)
	imagesDir := fs.String("images", "", "folder-per-person image set (DIR/<person>/*.jpg)")
	shotsFlag := fs.String("shots", "1,5", "comma-separated numbers of enrollment images per person")
	minImages := fs.Int("min-images", 10, "people with at least this many images are enrolled, the others are strangers")
	asJSON := fs.Bool("json", false, "print one JSON object")
	models := fs.String("models", defaultModelDir(), "model directory")
	backbone := addBackboneFlag(fs)
	threshold := fs.Float64("threshold", 0, "fixed distance threshold (0: the gallery's fitted default)")
	workers := fs.Int("workers", 2, "detection workers")
	debug := fs.Bool("debug", false, "debug logging")
	var finetune *bool
	var seenShare *float64
	if fewshotFinetune != nil {
		finetune = fs.Bool("finetune", false, "also fine-tune on the enrollments and report both (results[].finetuned, guard)")
		seenShare = fs.Float64("seen-strangers", 0, "with --finetune: this fraction of the strangers (by person) is seen by the device before the fine-tune "+
			"(their faces become unknown-face clusters, as the daemon files unknown tracks); only the others are stranger probes, for frozen and fine-tuned alike")
	}
	if _, err := parseInterleaved(fs, args); err != nil {
		return exitUsage, err
	}
	if *imagesDir == "" {
		return exitUsage, usageError("--images DIR is required")
	}
	bb, err := lookupBackbone(*backbone, "")
	if err != nil {
		return exitUsage, err
	}
	var shots []int
	for _, s := range strings.Split(*shotsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return exitUsage, usageError("--shots: %q is not a positive number", s)
		}
		shots = append(shots, n)
	}
	if *minImages < 1 {
		return exitUsage, usageError("--min-images must be at least 1")
	}
	seenFrac := 0.0
	if seenShare != nil {
		seenFrac = *seenShare
		if seenFrac < 0 || seenFrac >= 1 || seenFrac != seenFrac {
			return exitUsage, usageError("--seen-strangers must be in [0, 1)")
		}
		if seenFrac > 0 && !*finetune {
			return exitUsage, usageError("--seen-strangers needs --finetune")
		}
	}
	logger := newLogger(*debug, false)
	if !*debug {
		// Only problems: enrollment chatter would drown the report.
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	set, err := scanFewshotSet(*imagesDir)
	if err != nil {
		return exitFailure, err
	}
	var people, strangers []string
	for _, p := range set.order {
		if len(set.images[p]) >= *minImages {
			people = append(people, p)
		} else {
			strangers = append(strangers, p)
		}
	}
	if len(people) == 0 {
		return exitFailure, fmt.Errorf("nobody in %s has %d or more images", *imagesDir, *minImages)
	}
	seen, strangers := splitSeenStrangers(strangers, seenFrac)
	det, emb, err := newFaceModels(*models, bb, max(1, *workers), logger)
	if err != nil {
		return exitStartup, err
	}
	defer det.Close()
	defer emb.Close()
	cache := newFaceCache(det, emb)
	start := time.Now()
	if err := embedFewshotSet(ctx, set, cache, max(1, *workers)); err != nil {
		return exitFailure, err
	}
	logger.Debug("embedded the image set", "images", set.count, "took", time.Since(start))

	report := fewshotReportJSON{Backbone: bb.ID, People: len(people), Strangers: len(strangers), SeenStrangers: len(seen)}
	var texts []string
	for _, k := range shots {
		run, cleanup, err := enrollFewshot(ctx, set, people, strangers, seen, k, *threshold, bb, cache, logger)
		if err != nil {
			return exitFailure, err
		}
		res, conf, err := run.Score(run.Gallery)
		if err != nil {
			cleanup()
			return exitFailure, err
		}
		entry := fewshotEntry{FewShotResult: res}
		if finetune != nil && *finetune {
			ft, guard, err := fewshotFinetune(ctx, run)
			if err != nil {
				cleanup()
				return exitFailure, fmt.Errorf("fine-tune (%d shots): %w", k, err)
			}
			entry.Finetuned, entry.Guard = &ft, guard
		}
		texts = append(texts, fewshotText(run, res, conf, entry))
		report.Results = append(report.Results, entry)
		cleanup()
	}
	if *asJSON {
		return exitOK, json.NewEncoder(os.Stdout).Encode(report)
	}
	fmt.Printf("few-shot open-set identification on %s: %d people enrolled (>= %d images), %d strangers; %d images, embedded in %s\n\n",
		*imagesDir, report.People, *minImages, report.Strangers, set.count, time.Since(start).Round(time.Second))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "shots\tprobes\tstranger probes\ttop-1\tDIR@FAR1%\tDIR@FAR0.1%\tthreshold\tDIR@thr\tFAR@thr\t")
	for _, e := range report.Results {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.3f\t%.4f\t%.4f\t\n", e.Shots, e.Probes, e.UnknownProbes,
			e.Top1, e.DIRAtFAR1, e.DIRAtFAR01, e.Threshold, e.DIRAtThresh, e.FalseAccept)
		if e.Finetuned != nil {
			f := e.Finetuned
			fmt.Fprintf(tw, "+finetune\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.3f\t%.4f\t%.4f\t(%s)\n", f.Probes, f.UnknownProbes,
				f.Top1, f.DIRAtFAR1, f.DIRAtFAR01, f.Threshold, f.DIRAtThresh, f.FalseAccept, e.Guard)
		}
	}
	tw.Flush()
	fmt.Println("\nDIR: right person AND accepted; FAR: strangers accepted as anyone; thr: the gallery's fitted default threshold.")
	for _, t := range texts {
		fmt.Print(t)
	}
	return exitOK, nil
}

// fewshotSet is a folder-per-person image set.
type fewshotSet struct {
	order  []string                   // people, sorted
	images map[string][]*fewshotImage // per person, sorted by file name
	count  int
}

func scanFewshotSet(dir string) (*fewshotSet, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	set := &fewshotSet{images: map[string][]*fewshotImage{}}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var imgs []*fewshotImage
		for _, f := range files {
			switch strings.ToLower(filepath.Ext(f.Name())) {
			case ".jpg", ".jpeg", ".png":
				imgs = append(imgs, &fewshotImage{Person: e.Name(), Path: filepath.Join(dir, e.Name(), f.Name())})
			}
		}
		if len(imgs) == 0 {
			continue
		}
		sort.Slice(imgs, func(i, j int) bool { return imgs[i].Path < imgs[j].Path })
		set.order = append(set.order, e.Name())
		set.images[e.Name()] = imgs
		set.count += len(imgs)
	}
	sort.Strings(set.order)
	if set.count == 0 {
		return nil, fmt.Errorf("no JPEG or PNG images in the sub-folders of %s", dir)
	}
	return set, nil
}

// faceCache runs detection and embedding once per distinct image (and
// chip), whichever shots setting asks: every setting goes through the real
// enrollment path without paying for the network again. It implements
// enroll.Finder and enroll.Embedder.
type faceCache struct {
	find  enroll.Finder
	emb   enroll.Embedder
	mu    sync.Mutex
	faces map[[32]byte]faceResult
	embs  map[[32]byte]face.Embedding
}

type faceResult struct {
	faces []face.Face
	err   error
}

func newFaceCache(f enroll.Finder, e enroll.Embedder) *faceCache {
	return &faceCache{find: f, emb: e, faces: map[[32]byte]faceResult{}, embs: map[[32]byte]face.Embedding{}}
}

func (c *faceCache) DetectBytes(data []byte) ([]face.Face, error) {
	key := sha256.Sum256(data)
	c.mu.Lock()
	r, ok := c.faces[key]
	c.mu.Unlock()
	if ok {
		return r.faces, r.err
	}
	faces, err := c.find.DetectBytes(data)
	c.mu.Lock()
	c.faces[key] = faceResult{faces, err}
	c.mu.Unlock()
	return faces, err
}

func (c *faceCache) Embed(chips []face.Chip) ([]face.Embedding, error) {
	out := make([]face.Embedding, len(chips))
	var missing []face.Chip
	var where []int
	keys := make([][32]byte, len(chips))
	c.mu.Lock()
	for i, ch := range chips {
		keys[i] = sha256.Sum256(ch.Pix)
		if e, ok := c.embs[keys[i]]; ok {
			out[i] = e
		} else {
			missing = append(missing, ch)
			where = append(where, i)
		}
	}
	c.mu.Unlock()
	if len(missing) > 0 {
		embs, err := c.emb.Embed(missing)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		for j, i := range where {
			out[i] = embs[j]
			c.embs[keys[i]] = embs[j]
		}
		c.mu.Unlock()
	}
	return out, nil
}

// embedFewshotSet finds and embeds the main face of every image (what a
// probe is matched with), filling the cache the enrollments use too.
func embedFewshotSet(ctx context.Context, set *fewshotSet, cache *faceCache, workers int) error {
	var all []*fewshotImage
	for _, p := range set.order {
		all = append(all, set.images[p]...)
	}
	bar := newProgressBar("embedding", len(all))
	defer bar.Finish()
	work := make(chan *fewshotImage)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for im := range work {
				im.Raw, im.Quality, im.Err = embedMainFace(im.Path, cache)
				bar.Add(1)
			}
		}()
	}
	for _, im := range all {
		if ctx.Err() != nil {
			break
		}
		work <- im
	}
	close(work)
	wg.Wait()
	return ctx.Err()
}

func embedMainFace(path string, cache *faceCache) ([]float32, float32, string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err.Error()
	}
	faces, err := cache.DetectBytes(data)
	if err != nil {
		return nil, 0, err.Error()
	}
	if len(faces) == 0 {
		return nil, 0, "no face"
	}
	w, h := imageSize(data)
	i, _ := enroll.MainFace(faces, w, h, 1)
	embs, err := cache.Embed([]face.Chip{faces[i].Chip})
	if err != nil {
		return nil, 0, err.Error()
	}
	return embs[0], faces[i].Quality.Score, ""
}

// enrollFewshot enrolls the first k images of each person that the
// enrollment accepts (a refused image is replaced by the person's next
// one, as a user would) into a throw-away store, and lists the probes:
// the people's other images (refused ones included), and every image of
// the strangers; the images of the seen strangers go to run.Seen.
func enrollFewshot(ctx context.Context, set *fewshotSet, people, strangers, seen []string, k int, threshold float64,
	bb *infer.Backbone, cache *faceCache, logger *slog.Logger) (*fewshotRun, func(), error) {
	dir, err := os.MkdirTemp("", "edged-fewshot-")
	if err != nil {
		return nil, nil, err
	}
	opts := store.DefaultOptions(filepath.Join(dir, "db"))
	opts.NoSync, opts.Logger = true, logger
	st, err := store.Open(opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	cleanup := func() { st.Close(); os.RemoveAll(dir) }
	g := gallery.New(gallery.Options{Space: bb.Space, Threshold: threshold, Logger: logger})
	en := enroll.New(st, g, cache, cache, enroll.Options{Backbone: bb.ID, Logger: logger})
	run := &fewshotRun{Shots: k, Store: st, Gallery: g, Enroller: en, IDs: map[string]string{}, Backbone: bb, Logger: logger}
	for _, p := range people {
		imgs := set.images[p]
		used := make([]bool, len(imgs)) // enrolled: not a probe
		next, accepted := 0, 0
		for accepted < k && next < len(imgs) {
			var req []enroll.Image
			var idx []int
			for ; next < len(imgs) && len(req) < k-accepted; next++ {
				data, err := os.ReadFile(imgs[next].Path)
				if err != nil {
					cleanup()
					return nil, nil, err
				}
				req = append(req, enroll.Image{Name: filepath.Base(imgs[next].Path), Data: data})
				idx = append(idx, next)
			}
			res, err := en.Enroll(ctx, enroll.Request{Name: p, Images: req, Source: store.SourceFile})
			if err != nil && !errors.Is(err, enroll.ErrNoUsableFace) {
				cleanup()
				return nil, nil, fmt.Errorf("enroll %s: %w", p, err)
			}
			run.Refused += res.Refused
			for j, ir := range res.Images {
				if !ir.Accepted {
					logger.Debug("enrollment image refused", "person", p, "image", ir.Name, "code", ir.Code, "reason", ir.Reason)
				} else if err == nil {
					used[idx[j]] = true
				}
			}
			if err == nil {
				accepted += res.Accepted
				run.IDs[p] = res.PersonID
			}
		}
		for i, im := range imgs {
			if !used[i] {
				run.Known = append(run.Known, fewshotProbe{Truth: p, Raw: im.Raw})
			}
		}
	}
	for _, p := range strangers {
		for _, im := range set.images[p] {
			run.Unknown = append(run.Unknown, fewshotProbe{Raw: im.Raw})
		}
	}
	for _, p := range seen {
		run.Seen = append(run.Seen, set.images[p]...)
	}
	return run, cleanup, nil
}

// fewshotText is the per-setting detail of the text report.
func fewshotText(run *fewshotRun, res eval.FewShotResult, conf []eval.FewShotConfusion, _ fewshotEntry) string {
	var b strings.Builder
	in := run.Gallery.Info()
	names := map[string]string{}
	for name, id := range run.IDs {
		names[id] = name
	}
	noFace := 0
	for _, p := range append(append([]fewshotProbe(nil), run.Known...), run.Unknown...) {
		if p.Raw == nil {
			noFace++
		}
	}
	fmt.Fprintf(&b, "\n%d shot(s): %d people, %d samples in %d clusters; %d enrollment images refused (replaced by the next); %d probes without a face\n",
		run.Shots, in.People, in.Samples, in.Clusters, run.Refused, noFace)
	c := in.Calibration
	fmt.Fprintf(&b, "  threshold %.3f fitted from %d leave-one-person-out distances (strangers %.3f +- %.3f, same person %.3f +- %.3f)\n",
		c.Threshold, c.Points, c.StrangerMean, c.StrangerSD, c.GenuineMean, c.GenuineSD)
	shown := 0
	for _, cf := range conf {
		if shown == 8 {
			break
		}
		if shown == 0 {
			b.WriteString("  confusions (most frequent first):\n")
		}
		shown++
		pred := names[cf.Predicted]
		if pred == "" {
			pred = cf.Predicted
		}
		if cf.Truth == "" {
			fmt.Fprintf(&b, "    %3d x a stranger accepted as %s\n", cf.Count, pred)
		} else {
			truth := names[cf.Truth]
			if truth == "" {
				truth = strings.TrimPrefix(cf.Truth, "?")
			}
			fmt.Fprintf(&b, "    %3d x %s seen as %s\n", cf.Count, truth, pred)
		}
	}
	if shown == 0 {
		b.WriteString("  no confusion\n")
	}
	return b.String()
}

// splitSeenStrangers splits the strangers by person: round(frac * n) of
// them, drawn with a fixed seed (the same split on every run and shots
// setting), are seen by the device before the fine-tune; the others stay
// probes. Both lists keep the input's order.
func splitSeenStrangers(strangers []string, frac float64) (seen, probes []string) {
	n := int(frac*float64(len(strangers)) + 0.5)
	if n <= 0 {
		return nil, strangers
	}
	pick := map[int]bool{}
	for _, i := range rand.New(rand.NewSource(1)).Perm(len(strangers))[:n] {
		pick[i] = true
	}
	for i, p := range strangers {
		if pick[i] {
			seen = append(seen, p)
		} else {
			probes = append(probes, p)
		}
	}
	return seen, probes
}
