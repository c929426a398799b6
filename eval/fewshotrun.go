package eval

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	_ "image/jpeg" // imageSize: enroll.MainFace weighs faces by the image's size
	_ "image/png"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/service"
	"github.com/edged-dev/edged/store"
)

// The few-shot harness (`edged eval fewshot`): a folder-per-person image
// set is split into people (enrolled, through the real enrollment path, k
// images each) and strangers; every other image is a probe, matched against
// the gallery. Detection and embedding come in through enroll.Finder and
// enroll.Embedder, so this stays pure Go.

// FewShotBackbone is the network the faces are embedded with, as plain
// values (infer.Backbone's ID, Space and Dim).
type FewShotBackbone struct {
	// ID is recorded with the enrolled samples (and the fine-tuned head).
	ID string
	// Space shapes the gallery and the unknown-face clustering.
	Space gallery.Space
	// Dim is the embedding dimension (the fine-tune's).
	Dim int
}

// FewShotFinetune runs the on-device fine-tune after a shots setting's
// enrollments, on run.Store exactly as the daemon would, and returns the
// figures with the fine-tuned head (scored with run.Score on a gallery
// switched to the new head) and the guard's decision ("activated" or
// "rejected: <reason>").
type FewShotFinetune func(ctx context.Context, run *FewShotRun) (finetuned FewShotResult, guard string, err error)

// FewShotDegrade turns an image (JPEG or PNG bytes) into a frame of the
// device's camera domain at downscale scale (package degrade's night frame:
// 1/3 for the frame the probes get, 1/2 for the nearer first frame of an
// experience track), seeded from name; it returns encoded bytes the
// detector reads. It lives outside eval because it needs GoCV.
type FewShotDegrade func(data []byte, name string, scale float64) ([]byte, error)

// Scales of the degraded frames.
const (
	DegradeProbeScale = 1.0 / 3 // probes, strangers, the second frame of a track
	DegradeNearScale  = 1.0 / 2 // the first, nearer frame of an experience track
)

// FewShotOptions configure NewFewShot and FewShot.Run.
type FewShotOptions struct {
	// Shots are the numbers of enrollment images per person, one setting
	// each.
	Shots []int
	// MinImages: people with at least this many images are enrolled, the
	// others are strangers.
	MinImages int
	// SeenStrangers is the fraction of the strangers (by person) the
	// device sees before the fine-tune (their faces become unknown-face
	// clusters, as the daemon files unknown tracks); only the others are
	// stranger probes. Needs Finetune.
	SeenStrangers float64
	// Degrade, when set, turns every probe and stranger image into a frame
	// of the device's domain (DegradeName, e.g. "night") before detection
	// (a miss counts as an error); enrollment shots stay clean.
	Degrade     FewShotDegrade
	DegradeName string
	// Experience is the fraction F of each known person's non-enrollment
	// images, and of the strangers (by person; it replaces SeenStrangers),
	// the device lives through before scoring "experienced": each image
	// arrives as a two-frame track (the nearer frame at DegradeNearScale,
	// then the probe's frame; both clean without Degrade) through the
	// daemon's own recognition path: pipeline.Recognizer with the real
	// gallery and tracker, service.Experience filing the tracks recognised
	// with high confidence, and the service's unknown-face clustering.
	// Nothing is labelled by hand; none of these images is a probe.
	Experience float64
	// ExperienceOptions configure service.Experience (zero: the daemon's
	// defaults).
	ExperienceOptions service.ExperienceOptions
	// Threshold is a fixed distance threshold (0: the gallery's fitted
	// default).
	Threshold float64
	Backbone  FewShotBackbone
	// Workers run detection at once. Default 1.
	Workers int
	// Finetune, when set, also fine-tunes after each setting's
	// enrollments (results[].finetuned, guard).
	Finetune FewShotFinetune
	// Half, when 1 or 2, keeps only one half of the people (known and
	// strangers): those whose FNV-64a of the folder name is even (1) or
	// odd (2). Defaults are fitted on one half and reported on the other.
	Half int
	// CacheFile, when set, keeps the detections and embeddings across
	// runs (a development aid for fitting defaults: loaded before, saved
	// after; delete it when the models or the images change).
	CacheFile string
	// Progress is called after each image embedded, with (done, total),
	// one call at a time.
	Progress func(done, total int)
	// Logger. Default: discard.
	Logger *slog.Logger
}

// FewShotEntry is one element of "results": the frozen figures
// (enrollment only, no experience), the gallery after the experience (no
// new head) and, with a Finetune step, the candidate head's figures and
// the guard's decision.
type FewShotEntry struct {
	FewShotResult
	Experienced *FewShotResult `json:"experienced,omitempty"`
	Finetuned   *FewShotResult `json:"finetuned,omitempty"`
	Guard       string         `json:"guard,omitempty"`
	// Live is what the experience did (tracks, faces filed, unknowns).
	Live *FewShotLive `json:"live,omitempty"`
}

// FewShotLive counts what the device's experience did in one setting.
type FewShotLive struct {
	Images     int   `json:"images"`      // experience images (two-frame tracks)
	Tracks     int64 `json:"tracks"`      // ended decided tracks
	Filed      int64 `json:"filed"`       // tracks filed as experience of a person
	Faces      int64 `json:"faces"`       // experience faces stored
	WrongFiled int   `json:"wrong_filed"` // tracks filed under the wrong person (measured, not used)
	Unknowns   int   `json:"unknowns"`    // unknown-face clusters afterwards
}

// FewShotReport is the whole `edged eval fewshot --json` object; its keys
// are a contract.
type FewShotReport struct {
	Backbone  string `json:"backbone"`
	People    int    `json:"people"`
	Strangers int    `json:"strangers"`
	// SeenStrangers (--seen-strangers) is how many of the strangers the
	// device saw before the fine-tune (their faces went into unknown-face
	// clusters, none is a probe); the other strangers are the probes.
	SeenStrangers int `json:"seen_strangers,omitempty"`
	// Degrade names the probes' degradation ("" clean); Experience is F.
	Degrade    string         `json:"degrade,omitempty"`
	Experience float64        `json:"experience"`
	Results    []FewShotEntry `json:"results"`
}

// FewShotImage is one image of the evaluation set, with its main face
// embedded once (nil Raw: no face found).
type FewShotImage struct {
	Person, Path string
	Raw          []float32
	Quality      float32 // the main face's quality score
	Err          string
	// Probe is the embedding a probe of this image gets: Raw, or with
	// Degrade the main face of the degraded frame (nil: no face found).
	Probe []float32
}

// fewshotProbe is a probe image: Truth is "" for a stranger.
type fewshotProbe struct {
	Truth string
	Raw   []float32 // nil: no face
	Path  string
}

// FewShotRun is one shots setting after its enrollments: the throw-away
// store and gallery, and the probes. Close removes the store.
type FewShotRun struct {
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
	// probes): SeeStrangers files them as unknown faces.
	Seen []*FewShotImage
	// Backbone is the network the faces were embedded with.
	Backbone FewShotBackbone
	Logger   *slog.Logger
	// Lived are the images of the known people the device lives through
	// (with the seen strangers' when Experience is on); LivedSeen is true
	// once the seen strangers went through the recognizer, so that
	// SeeStrangers does not file them again.
	Lived     []*FewShotImage
	LivedSeen bool
	// enrolled are the paths of the images enrolled (none is a probe).
	enrolled []string
	cleanup  func()
}

// Close removes the run's throw-away store.
func (r *FewShotRun) Close() {
	if r.cleanup != nil {
		r.cleanup()
		r.cleanup = nil
	}
}

// Score matches every probe against g and computes the figures.
func (r *FewShotRun) Score(g *gallery.Gallery) (FewShotResult, []FewShotConfusion, error) {
	match := func(ps []fewshotProbe, ids map[string]string) ([]FewShotProbe, error) {
		out := make([]FewShotProbe, 0, len(ps))
		for _, p := range ps {
			fp := FewShotProbe{Truth: ids[p.Truth]}
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
		return FewShotResult{}, nil, err
	}
	u, err := match(r.Unknown, r.IDs)
	if err != nil {
		return FewShotResult{}, nil, err
	}
	return FewShotScore(r.Shots, k, u, g.Threshold()), FewShotConfusions(k, u), nil
}

// FewShot is an image set split for the harness, before any network runs.
type FewShot struct {
	dir                     string
	opts                    FewShotOptions
	set                     *fewshotSet
	people, strangers, seen []string
}

// NewFewShot scans dir (DIR/<person>/*.jpg) and splits it: people with
// o.MinImages images or more are enrolled, the others are strangers, of
// which a fixed share (o.SeenStrangers) is seen before the fine-tune.
func NewFewShot(dir string, o FewShotOptions) (*FewShot, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Workers = max(1, o.Workers)
	set, err := scanFewshotSet(dir)
	if err != nil {
		return nil, err
	}
	f := &FewShot{dir: dir, opts: o, set: set}
	var strangers []string
	for _, p := range set.order {
		if o.Half == 1 || o.Half == 2 {
			h := fnv.New64a()
			h.Write([]byte(p))
			if int(h.Sum64()%2)+1 != o.Half {
				continue
			}
		}
		if len(set.images[p]) >= o.MinImages {
			f.people = append(f.people, p)
		} else {
			strangers = append(strangers, p)
		}
	}
	if len(f.people) == 0 {
		return nil, fmt.Errorf("nobody in %s has %d or more images", dir, o.MinImages)
	}
	frac := o.SeenStrangers
	if o.Experience > 0 {
		frac = o.Experience
	}
	f.seen, f.strangers = splitSeenStrangers(strangers, frac)
	return f, nil
}

// FewShotOutcome is what FewShot.Run measured.
type FewShotOutcome struct {
	Report FewShotReport
	// Images is the number of images in the set.
	Images int
	texts  []string
}

// Run embeds every image's main face once (find and emb are called once
// per distinct image and chip, whichever setting asks), then for each
// shots setting enrolls, scores the probes and, with o.Finetune, fine-tunes
// and scores again.
func (f *FewShot) Run(ctx context.Context, find enroll.Finder, emb enroll.Embedder) (*FewShotOutcome, error) {
	o := f.opts
	cache := newFaceCache(find, emb)
	if o.CacheFile != "" {
		if err := cache.load(o.CacheFile); err != nil {
			o.Logger.Warn("face cache not loaded", "file", o.CacheFile, "err", err)
		}
		defer func() {
			if err := cache.save(o.CacheFile); err != nil {
				o.Logger.Warn("face cache not saved", "file", o.CacheFile, "err", err)
			}
		}()
	}
	start := time.Now()
	if err := embedFewshotSet(ctx, f.set, cache, o.Workers, o.Degrade, o.Progress); err != nil {
		return nil, err
	}
	o.Logger.Debug("embedded the image set", "images", f.set.count, "took", time.Since(start))

	out := &FewShotOutcome{Images: f.set.count,
		Report: FewShotReport{Backbone: o.Backbone.ID, People: len(f.people), Strangers: len(f.strangers), SeenStrangers: len(f.seen),
			Degrade: o.DegradeName, Experience: o.Experience}}
	for _, k := range o.Shots {
		run, err := enrollFewshot(ctx, f.set, f.people, f.strangers, f.seen, k, o.Threshold, o.Backbone, cache, o.Experience, o.Logger)
		if err != nil {
			return nil, err
		}
		res, conf, err := run.Score(run.Gallery)
		if err != nil {
			run.Close()
			return nil, err
		}
		entry := FewShotEntry{FewShotResult: res}
		if o.Experience > 0 {
			live, err := run.Live(ctx, cache, o.Degrade, o.ExperienceOptions)
			if err != nil {
				run.Close()
				return nil, fmt.Errorf("experience (%d shots): %w", k, err)
			}
			ex, _, err := run.Score(run.Gallery)
			if err != nil {
				run.Close()
				return nil, err
			}
			entry.Experienced, entry.Live = &ex, &live
		}
		if o.Finetune != nil {
			ft, guard, err := o.Finetune(ctx, run)
			if err != nil {
				run.Close()
				return nil, fmt.Errorf("fine-tune (%d shots): %w", k, err)
			}
			entry.Finetuned, entry.Guard = &ft, guard
		}
		out.texts = append(out.texts, fewshotText(run, res, conf, entry))
		out.Report.Results = append(out.Report.Results, entry)
		run.Close()
	}
	return out, nil
}

// WriteText writes the text report: the figures of every setting, then the
// details (calibration, refusals, confusions) of each. took is the time the
// run took.
func (f *FewShot) WriteText(w io.Writer, out *FewShotOutcome, took time.Duration) {
	report := out.Report
	fmt.Fprintf(w, "few-shot open-set identification on %s: %d people enrolled (>= %d images), %d strangers; %d images, embedded in %s\n\n",
		f.dir, report.People, f.opts.MinImages, report.Strangers, out.Images, took.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "shots\tprobes\tstranger probes\ttop-1\tDIR@FAR1%\tDIR@FAR0.1%\tthreshold\tDIR@thr\tFAR@thr\t")
	for _, e := range report.Results {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.3f\t%.4f\t%.4f\t\n", e.Shots, e.Probes, e.UnknownProbes,
			e.Top1, e.DIRAtFAR1, e.DIRAtFAR01, e.Threshold, e.DIRAtThresh, e.FalseAccept)
		if e.Experienced != nil {
			f := e.Experienced
			fmt.Fprintf(tw, "+experience\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.3f\t%.4f\t%.4f\t(%d tracks filed, %d faces)\n", f.Probes, f.UnknownProbes,
				f.Top1, f.DIRAtFAR1, f.DIRAtFAR01, f.Threshold, f.DIRAtThresh, f.FalseAccept, e.Live.Filed, e.Live.Faces)
		}
		if e.Finetuned != nil {
			f := e.Finetuned
			fmt.Fprintf(tw, "+finetune\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.3f\t%.4f\t%.4f\t(%s)\n", f.Probes, f.UnknownProbes,
				f.Top1, f.DIRAtFAR1, f.DIRAtFAR01, f.Threshold, f.DIRAtThresh, f.FalseAccept, e.Guard)
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\nDIR: right person AND accepted; FAR: strangers accepted as anyone; thr: the gallery's fitted default threshold.")
	for _, t := range out.texts {
		fmt.Fprint(w, t)
	}
}

// fewshotSet is a folder-per-person image set.
type fewshotSet struct {
	order  []string                   // people, sorted
	images map[string][]*FewShotImage // per person, sorted by file name
	count  int
}

// scanFewshotSet groups ScanFolders' images by person.
func scanFewshotSet(dir string) (*fewshotSet, error) {
	imgs, err := ScanFolders(dir)
	if err != nil {
		return nil, err
	}
	set := &fewshotSet{images: map[string][]*FewShotImage{}, count: len(imgs)}
	for _, im := range imgs {
		if set.images[im.Person] == nil {
			set.order = append(set.order, im.Person)
		}
		set.images[im.Person] = append(set.images[im.Person], &FewShotImage{Person: im.Person, Path: im.Path})
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
func embedFewshotSet(ctx context.Context, set *fewshotSet, cache *faceCache, workers int, degrade FewShotDegrade, progress func(done, total int)) error {
	var all []*FewShotImage
	for _, p := range set.order {
		all = append(all, set.images[p]...)
	}
	var progressMu sync.Mutex
	done := 0
	work := make(chan *FewShotImage)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for im := range work {
				im.Raw, im.Quality, im.Err = embedMainFace(im.Path, cache)
				im.Probe = im.Raw
				if degrade != nil {
					im.Probe = embedDegraded(im.Path, cache, degrade, DegradeProbeScale)
				}
				if progress != nil {
					progressMu.Lock()
					done++
					progress(done, len(all))
					progressMu.Unlock()
				}
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

// embedDegraded embeds the main face of the image's degraded frame (nil:
// no face, or the image could not be degraded).
func embedDegraded(path string, cache *faceCache, degrade FewShotDegrade, scale float64) []float32 {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	frame, err := degrade(data, path, scale)
	if err != nil {
		return nil
	}
	faces, err := cache.DetectBytes(frame)
	if err != nil || len(faces) == 0 {
		return nil
	}
	w, h := imageSize(frame)
	i, _ := enroll.MainFace(faces, w, h, 1)
	embs, err := cache.Embed([]face.Chip{faces[i].Chip})
	if err != nil {
		return nil
	}
	return embs[0]
}

func imageSize(data []byte) (int, int) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return 0, 0
	}
	return cfg.Width, cfg.Height
}

// enrollFewshot enrolls the first k images of each person that the
// enrollment accepts (a refused image is replaced by the person's next
// one, as a user would) into a throw-away store, and lists the probes:
// the people's other images (refused ones included), and every image of
// the strangers; the images of the seen strangers go to run.Seen.
func enrollFewshot(ctx context.Context, set *fewshotSet, people, strangers, seen []string, k int, threshold float64,
	bb FewShotBackbone, cache *faceCache, experience float64, logger *slog.Logger) (*FewShotRun, error) {
	dir, err := os.MkdirTemp("", "edged-fewshot-")
	if err != nil {
		return nil, err
	}
	opts := store.DefaultOptions(filepath.Join(dir, "db"))
	opts.NoSync, opts.Logger = true, logger
	st, err := store.Open(opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cleanup := func() { st.Close(); os.RemoveAll(dir) }
	g := gallery.New(gallery.Options{Space: bb.Space, Threshold: threshold, Logger: logger})
	en := enroll.New(st, g, cache, cache, enroll.Options{Backbone: bb.ID, Logger: logger})
	run := &FewShotRun{Shots: k, Store: st, Gallery: g, Enroller: en, IDs: map[string]string{}, Backbone: bb, Logger: logger, cleanup: cleanup}
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
					return nil, err
				}
				req = append(req, enroll.Image{Name: filepath.Base(imgs[next].Path), Data: data})
				idx = append(idx, next)
			}
			res, err := en.Enroll(ctx, enroll.Request{Name: p, Images: req, Source: store.SourceFile})
			if err != nil && !errors.Is(err, enroll.ErrNoUsableFace) {
				cleanup()
				return nil, fmt.Errorf("enroll %s: %w", p, err)
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
		var rest []*FewShotImage
		for i, im := range imgs {
			if used[i] {
				run.enrolled = append(run.enrolled, im.Path)
			} else {
				rest = append(rest, im)
			}
		}
		lived := pickExperience(rest, experience)
		for _, im := range rest {
			if lived[im] {
				run.Lived = append(run.Lived, im)
			} else {
				run.Known = append(run.Known, fewshotProbe{Truth: p, Raw: im.Probe, Path: im.Path})
			}
		}
	}
	for _, p := range strangers {
		for _, im := range set.images[p] {
			run.Unknown = append(run.Unknown, fewshotProbe{Raw: im.Probe, Path: im.Path})
		}
	}
	for _, p := range seen {
		run.Seen = append(run.Seen, set.images[p]...)
	}
	return run, nil
}

// fewshotText is the per-setting detail of the text report.
func fewshotText(run *FewShotRun, res FewShotResult, conf []FewShotConfusion, _ FewShotEntry) string {
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

// SeeStrangers shows the device the seen strangers' images before the
// fine-tune, the way the daemon meets strangers: each image is one
// appearance matched against the (frozen) gallery; one the gallery accepts
// as somebody would be reported as that person and is not filed, the
// others join their unknown-N cluster in the store through the enroller
// (gallery.Unknowns with its default options, so faces below its quality
// floor are dropped as the daemon drops them). It returns the number of
// images filed and accepted as somebody.
func (run *FewShotRun) SeeStrangers() (filed, accepted int, err error) {
	if run.LivedSeen {
		return 0, 0, nil // they went through the recognizer (Live)
	}
	u := gallery.NewUnknowns(gallery.UnknownOptions{Space: run.Backbone.Space})
	if _, err := enroll.LoadUnknowns(run.Store, u, run.Backbone.ID); err != nil {
		return 0, 0, err
	}
	for i, im := range run.Seen {
		if im.Raw == nil {
			continue
		}
		m, err := run.Gallery.Match(im.Raw)
		if err != nil {
			return filed, accepted, err
		}
		if m.Known {
			accepted++
			continue
		}
		// One second apart: each image is its own appearance, recent (the
		// fine-tune leaves out identities older than its UnknownMaxAge;
		// times near 1970 kept every seen stranger out of it).
		at := time.Now().Add(time.Duration(i-len(run.Seen)) * time.Second).UTC()
		_, _, ok, err := run.Enroller.ObserveUnknown(u, []gallery.UnknownFace{{Embedding: im.Raw, Quality: im.Quality, Time: at, Camera: "eval"}})
		if err != nil {
			return filed, accepted, err
		}
		if ok {
			filed++
		}
	}
	return filed, accepted, nil
}
