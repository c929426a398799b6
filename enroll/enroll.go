package enroll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig of enrollment photos
	"image/png"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/store"
)

// Finder finds the faces in an encoded image (JPEG or PNG): aligned chips
// with their quality. *detect.Detector implements it.
type Finder interface {
	DetectBytes(data []byte) ([]face.Face, error)
}

// Embedder maps chips to raw backbone embeddings. *infer.Embedder
// implements it.
type Embedder interface {
	Embed([]face.Chip) ([]face.Embedding, error)
}

// Options configure an Enroller. Zero fields take the defaults.
type Options struct {
	// MinQuality refuses faces whose quality score (0..1) is below it.
	// Default 0.1: on LFW that refuses the worst 6% (very blurry or turned
	// away); the detector's Issue text is the reason given.
	MinQuality float32 `yaml:"min_quality"`
	// DominantRatio: with several faces in a photo, the most prominent one
	// (area, weighted by nearness to the image centre) is enrolled only when
	// it is at least this many times as prominent as the next; otherwise the
	// photo is refused as several_faces. Default 2.
	DominantRatio float64 `yaml:"dominant_ratio"`
	// Backbone is the id of the backbone the Embedder (and every raw
	// embedding handed to the Enroller) belongs to, e.g. "mobilefacenet":
	// it is recorded in every sample, negative and unknown cluster the
	// Enroller writes, and only the person's samples of this backbone are
	// clustered and given to the gallery. Empty stays empty in the store,
	// which reads as store.LegacyBackbone ("dlib"); the daemon always sets
	// it.
	Backbone string `yaml:"backbone"`
	// KeepChips stores each sample's face chip (PNG) next to its
	// embedding. Default false: privacy; the raw embedding is enough to
	// re-project the gallery with a new head.
	KeepChips bool `yaml:"keep_chips"`
	// DropCrops stops storing each sample's face crop (face.Face.Crop: the
	// face aligned to face.CropTemplate, a ~50 KB PNG, encrypted with the
	// store). Default false, i.e. crops are kept: they are what lets Reembed
	// move the gallery to another backbone without enrolling everyone
	// again. It is the negation of the config key store.keep_crops (default
	// true), so that the zero Options keep crops.
	DropCrops bool `yaml:"drop_crops"`
	// MaxImages caps the images of one request (default 64) and
	// MaxImageBytes the size of one image (default 16 MiB).
	MaxImages     int `yaml:"max_images"`
	MaxImageBytes int `yaml:"max_image_bytes"`
	// Events, when set, returns outbox events to append in the same
	// transaction as an enrollment (so the "enrolled" event is durable
	// exactly when the enrollment is).
	Events func(r Result) []store.OutboxEvent `yaml:"-"`
	// Unknowns, when set, forgets an unknown-face cluster once EnrollUnknown
	// named it.
	Unknowns *gallery.Unknowns `yaml:"-"`
	// Changed, when set, is called with the person's id after every change
	// the Enroller committed (enroll, rename, delete, feedback, sample
	// removal), possibly with the Enroller's lock held: it must return
	// quickly and not call the Enroller (package fleet's Sync.Changed only
	// queues the id, then publishes the change to the other devices).
	Changed func(personIDs ...string) `yaml:"-"`
	// Logger, default: discard.
	Logger *slog.Logger `yaml:"-"`
}

func (o *Options) fill() {
	if o.MinQuality <= 0 {
		o.MinQuality = 0.1
	}
	if o.DominantRatio <= 1 {
		o.DominantRatio = 2
	}
	if o.MaxImages <= 0 {
		o.MaxImages = 64
	}
	if o.MaxImageBytes <= 0 {
		o.MaxImageBytes = 16 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	var o Options
	o.fill()
	return o
}

// Enroller is the one enrollment path (CLI, MQTT, evaluation): it turns
// images or embeddings into samples of a person, stores person, samples,
// clusters (and an optional event) in one transaction, then updates the
// gallery. It also serves the other gallery-changing operations (delete,
// rename, negative feedback) so store and gallery stay in step. Safe for
// concurrent use; changes are serialised.
type Enroller struct {
	st   *store.Store
	g    *gallery.Gallery
	find Finder
	emb  Embedder
	opts Options
	mu   sync.Mutex // serialises commit + gallery update

	unknownsPruned time.Time // last PruneUnknowns by ObserveUnknown (mu held)
}

// New returns an Enroller. find and emb may be nil when only embeddings
// are enrolled (EnrollEmbeddings, EnrollUnknown).
func New(st *store.Store, g *gallery.Gallery, f Finder, e Embedder, opts Options) *Enroller {
	opts.fill()
	return &Enroller{st: st, g: g, find: f, emb: e, opts: opts}
}

// Image is one enrollment photo.
type Image struct {
	Name string // for messages and the sample's Ref (a file name)
	Data []byte // JPEG or PNG
}

// Request enrolls images for a new or existing person.
type Request struct {
	// Name of the person. An existing person with that name (compared
	// case-insensitively) gets the new samples; otherwise a person is
	// created. Ignored when PersonID is set.
	Name string
	// PersonID adds samples to an existing person.
	PersonID string
	Images   []Image
	// Source is the samples' source (store.SourceFile, SourceMQTT, ...);
	// default store.SourceFile. Ref, when set, is stored instead of each
	// image's name (e.g. the MQTT request id).
	Source string
	Ref    string
	// AllOrNothing refuses the whole request when any image is refused.
	AllOrNothing bool
}

// ImageResult is the outcome for one image.
type ImageResult struct {
	Name     string  `json:"name"`
	Accepted bool    `json:"accepted"`
	SampleID string  `json:"sample_id,omitempty"`
	Code     string  `json:"code,omitempty"`   // why refused: no_face, several_faces, poor_quality, bad_image
	Reason   string  `json:"reason,omitempty"` // human readable
	Faces    int     `json:"faces"`
	Quality  float32 `json:"quality"`
}

// Result describes an enrollment.
type Result struct {
	PersonID string        `json:"person_id"`
	Name     string        `json:"name"`
	Created  bool          `json:"created"`
	Accepted int           `json:"accepted"`
	Refused  int           `json:"refused"`
	Images   []ImageResult `json:"images,omitempty"`
	Samples  int           `json:"samples"`  // the person's samples (of the Enroller's backbone) after the enrollment
	Clusters int           `json:"clusters"` // the person's clusters after the enrollment
	// Unknown is the unknown-face cluster enrolled (EnrollUnknown).
	Unknown string `json:"unknown,omitempty"`
}

// Embedding is one face given as a raw backbone embedding.
type Embedding struct {
	Embedding []float32
	Quality   float32
	Source    string
	Ref       string
}

// accepted is a face ready to store.
type accepted struct {
	id   string
	img  int // index into Result.Images, -1 for embeddings
	raw  []float32
	qual float32
	chip []byte
	crop []byte // PNG of the face crop, nil when none is kept
	src  string
	ref  string
}

// Enroll detects, checks, embeds and stores the faces of req.Images. The
// Result lists every image, accepted or refused with its code and reason;
// the error, when not nil, is an *Error (ErrNoUsableFace when no image
// gave a usable face). Nothing is stored unless the error is nil.
func (e *Enroller) Enroll(ctx context.Context, req Request) (Result, error) {
	res := Result{PersonID: req.PersonID, Name: strings.TrimSpace(req.Name)}
	if err := e.checkTarget(req.Name, req.PersonID); err != nil {
		return res, err
	}
	switch {
	case len(req.Images) == 0:
		return res, ErrBadRequest.with(nil, "no images")
	case len(req.Images) > e.opts.MaxImages:
		return res, ErrBadRequest.with(nil, "%d images, at most %d per request", len(req.Images), e.opts.MaxImages)
	case e.find == nil || e.emb == nil:
		return res, ErrInternal.with(nil, "enroller has no face finder or embedder")
	}
	src := req.Source
	if src == "" {
		src = store.SourceFile
	}
	var chips []face.Chip
	var acc []accepted
	var err error
	for i, img := range req.Images {
		if err := ctx.Err(); err != nil {
			return res, ErrInternal.with(err, "enrollment cancelled")
		}
		ir := ImageResult{Name: img.Name}
		f, code, reason := e.faceOf(img)
		ir.Faces = f.n
		if f.face != nil {
			ir.Quality = f.face.Quality.Score
		}
		if code != "" {
			ir.Code, ir.Reason = code, reason
			res.Images = append(res.Images, ir)
			res.Refused++
			continue
		}
		ref := img.Name
		if req.Ref != "" {
			ref = req.Ref
		}
		a := accepted{img: i, qual: f.face.Quality.Score, src: src, ref: ref}
		if e.opts.KeepChips {
			var buf bytes.Buffer
			if err := png.Encode(&buf, f.face.Chip.Image()); err != nil {
				return res, ErrInternal.with(err, "encode chip")
			}
			a.chip = buf.Bytes()
		}
		if a.crop, err = e.encodeCrop(f.face.Crop); err != nil {
			return res, ErrInternal.with(err, "encode crop")
		}
		chips = append(chips, f.face.Chip)
		acc = append(acc, a)
		ir.Accepted = true
		res.Images = append(res.Images, ir)
		res.Accepted++
	}
	if len(acc) == 0 {
		return res, noUsableFace(res.Images)
	}
	if req.AllOrNothing && res.Refused > 0 {
		for _, ir := range res.Images {
			if !ir.Accepted {
				return res, codeError(ir.Code).with(nil, "%s: %s (all-or-nothing: nothing enrolled)", ir.Name, ir.Reason)
			}
		}
	}
	embs, err := e.emb.Embed(chips)
	if err != nil {
		return res, ErrInternal.with(err, "embed")
	}
	if len(embs) != len(chips) {
		return res, ErrInternal.with(nil, "embedder returned %d embeddings for %d chips", len(embs), len(chips))
	}
	for i := range acc {
		if err := e.g.CheckEmbedding(embs[i]); err != nil {
			return res, ErrInternal.with(err, "embedder output")
		}
		acc[i].raw = embs[i]
	}
	return e.commit(ctx, res, req.Name, req.PersonID, acc, "")
}

// encodeCrop returns the PNG of a face's crop to store with its sample, or
// nil when crops are dropped or the face has none (a detector asked for
// chips only, or a crop of another size than face.CropTemplate's, which
// no backbone's chip could be cut from).
func (e *Enroller) encodeCrop(crop face.Chip) ([]byte, error) {
	if e.opts.DropCrops || len(crop.Pix) == 0 {
		return nil, nil
	}
	if err := crop.Validate(); err != nil || crop.Side() != face.CropSize {
		e.opts.Logger.Debug("face crop not kept: not a face.CropTemplate crop", "side", crop.Side(), "bytes", len(crop.Pix))
		return nil, nil
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, crop.Image()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EncodeCrop is encodeCrop for the other writers of crops (an unknown-face
// cluster's pictures): the PNG, or nil when crops are dropped or crop is
// not a face.CropTemplate crop.
func (e *Enroller) EncodeCrop(crop face.Chip) ([]byte, error) { return e.encodeCrop(crop) }

// EnrollEmbeddings enrolls faces given as raw embeddings (a camera track's
// best faces, ...), for the person with personID or, when it is empty,
// the person called name (created when missing).
func (e *Enroller) EnrollEmbeddings(ctx context.Context, name, personID string, faces []Embedding) (Result, error) {
	res := Result{PersonID: personID, Name: strings.TrimSpace(name)}
	if err := e.checkTarget(name, personID); err != nil {
		return res, err
	}
	if len(faces) == 0 {
		return res, ErrBadRequest.with(nil, "no embeddings")
	}
	acc := make([]accepted, 0, len(faces))
	for i, f := range faces {
		if err := e.g.CheckEmbedding(f.Embedding); err != nil {
			return res, ErrBadRequest.with(err, "embedding %d", i)
		}
		src := f.Source
		if src == "" {
			src = store.SourceTrack
		}
		acc = append(acc, accepted{img: -1, raw: f.Embedding, qual: f.Quality, src: src, ref: f.Ref})
	}
	res.Accepted = len(acc)
	return e.commit(ctx, res, name, personID, acc, "")
}

// EnrollUnknown names an unknown-face cluster: its kept faces become
// samples of the person (name or personID, as in EnrollEmbeddings) and the
// cluster is deleted, in one transaction.
func (e *Enroller) EnrollUnknown(ctx context.Context, unknownID, name, personID string) (Result, error) {
	res := Result{PersonID: personID, Name: strings.TrimSpace(name), Unknown: unknownID}
	if err := e.checkTarget(name, personID); err != nil {
		return res, err
	}
	var u store.Unknown
	err := e.st.View(func(tx *store.Tx) (err error) { u, err = tx.Unknown(unknownID); return err })
	if errors.Is(err, store.ErrUnknownNotFound) {
		return res, ErrUnknownCluster.with(nil, "%s: not found", unknownID)
	}
	if err != nil {
		return res, ErrInternal.with(err, "read %s", unknownID)
	}
	if len(u.Samples) == 0 {
		return res, ErrNoUsableFace.with(nil, "%s keeps no faces", unknownID)
	}
	if bb := unknownBackbone(u); bb != e.backbone() {
		// Unknown clusters keep no crops: their faces cannot be
		// re-embedded, and vectors of another backbone must not be stored
		// as this one's.
		return res, ErrUnknownCluster.with(nil, "%s was clustered with the %s backbone and edged now uses %s: its faces cannot be enrolled (enroll photos instead)",
			unknownID, bb, e.backbone())
	}
	acc := make([]accepted, 0, len(u.Samples))
	for _, s := range u.Samples {
		acc = append(acc, accepted{img: -1, raw: s.Embedding, qual: s.Quality, src: store.SourceUnknown, ref: unknownID})
	}
	res.Accepted = len(acc)
	return e.commit(ctx, res, name, personID, acc, unknownID)
}

func (e *Enroller) checkTarget(name, personID string) error {
	if personID != "" {
		return nil
	}
	if strings.TrimSpace(name) == "" {
		return ErrBadRequest.with(nil, "a name or a person id is required")
	}
	if err := store.ValidateName(name); err != nil {
		return ErrInvalidName.with(nil, "%v", err)
	}
	return nil
}

// CommitHook writes records that must commit together with an enrollment
// (the command de-duplication record of the request that asked for it:
// package service). It runs inside the enrollment's transaction, after
// everything else is written; an error aborts the enrollment.
type CommitHook func(tx *store.Tx, r Result) error

type commitHookKey struct{}

// WithCommitHook returns a context that makes Enroll, EnrollEmbeddings and
// EnrollUnknown run hook in the enrollment's transaction. It travels in
// the context because it belongs to one request, not to the Enroller.
func WithCommitHook(ctx context.Context, hook CommitHook) context.Context {
	return context.WithValue(ctx, commitHookKey{}, hook)
}

// commit stores the accepted faces for the person in ONE transaction: the
// person (created when new), the samples, the person's clusters recomputed
// over all their samples, the optional events, and the deletion of the
// enrolled unknown cluster. Then it refreshes the person in the gallery.
func (e *Enroller) commit(ctx context.Context, res Result, name, personID string, acc []accepted, unknownID string) (Result, error) {
	if err := ctx.Err(); err != nil {
		return res, ErrInternal.with(err, "enrollment cancelled")
	}
	for i := range acc {
		acc[i].id = store.NewID()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var gp gallery.Person
	var out Result
	err := e.st.Update(func(tx *store.Tx) error {
		out = res
		out.Created = false
		var p store.Person
		var err error
		switch {
		case personID != "":
			if p, err = tx.Person(personID); errors.Is(err, store.ErrPersonNotFound) {
				return ErrUnknownPerson.with(nil, "person %q not found", personID)
			}
		default:
			p, err = tx.PersonByName(name)
			if errors.Is(err, store.ErrPersonNotFound) {
				p, err = store.Person{Name: name}, nil
				if err = tx.PutPerson(&p); err == nil {
					out.Created = true
				}
			}
		}
		if err != nil {
			return err
		}
		out.PersonID, out.Name = p.ID, p.Name
		for i := range acc {
			s := store.Sample{ID: acc[i].id, PersonID: p.ID, Embedding: acc[i].raw, Backbone: e.opts.Backbone,
				Quality: acc[i].qual, Source: acc[i].src, Ref: acc[i].ref}
			if err := tx.AddSampleWith(&s, store.Images{Chip: acc[i].chip, Crop: acc[i].crop}); err != nil {
				return err
			}
		}
		all, err := tx.Samples(p.ID)
		if err != nil {
			return err
		}
		negs, err := tx.Negatives(p.ID)
		if err != nil {
			return err
		}
		exp, err := tx.ExperienceOf(p.ID)
		if err != nil {
			return err
		}
		gp = e.galleryPerson(p, all, negs)
		gp.Experience = galleryExperience(exp, e.backbone())
		clusters, err := e.g.ClusterSamples(gp.Samples)
		if err != nil {
			return ErrBadRequest.with(err, "embedding does not fit the gallery")
		}
		if err := tx.PutClusters(p.ID, storeClusters(clusters, e.headID())); err != nil {
			return err
		}
		out.Samples, out.Clusters = len(gp.Samples), len(clusters)
		if unknownID != "" {
			if err := tx.DeleteUnknown(unknownID); err != nil {
				if errors.Is(err, store.ErrUnknownNotFound) {
					return ErrUnknownCluster.with(nil, "%s: not found", unknownID)
				}
				return err
			}
		}
		if e.opts.Events != nil {
			if err := tx.AppendEvents(e.opts.Events(out)...); err != nil {
				return err
			}
		}
		if hook, ok := ctx.Value(commitHookKey{}).(CommitHook); ok {
			if err := hook(tx, out); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return res, storeError(err)
	}
	for _, a := range acc {
		if a.img >= 0 && a.img < len(out.Images) {
			out.Images[a.img].SampleID = a.id
		}
	}
	if unknownID != "" && e.opts.Unknowns != nil {
		e.opts.Unknowns.Remove(unknownID)
	}
	if err := e.g.Upsert(gp); err != nil {
		// The store has the enrollment; the gallery will get it at the next
		// load. Say so rather than fail a committed enrollment.
		e.opts.Logger.Error("gallery update after enrollment failed", "person", out.PersonID, "err", err)
	}
	e.changed(out.PersonID)
	e.opts.Logger.Debug("enrolled", "person", out.PersonID, "name", out.Name, "created", out.Created,
		"accepted", out.Accepted, "refused", out.Refused, "samples", out.Samples, "clusters", out.Clusters)
	return out, nil
}

// headID names the matching space of the stored clusters.
func (e *Enroller) headID() string { return e.g.ProjectorID() }

// backbone is the backbone id of the Enroller's vectors, with the legacy
// rule applied.
func (e *Enroller) backbone() string { return store.BackboneOf(e.opts.Backbone) }

// Backbone is the id of the backbone whose vectors the Enroller writes and
// matches (Options.Backbone, "" read as store.LegacyBackbone).
func (e *Enroller) Backbone() string { return e.backbone() }

// galleryPerson is the person as the gallery holds them: only the samples
// and negatives of the Enroller's backbone (those of another one wait for a
// re-embedding or a new enrollment; see LoadGallery).
func (e *Enroller) galleryPerson(p store.Person, samples []store.Sample, negs []store.Negative) gallery.Person {
	return galleryPerson(p, samples, negs, e.backbone())
}

// galleryExperience is the person's experience faces of backbone as the
// gallery holds them.
func galleryExperience(xs []store.Experience, backbone string) []gallery.Sample {
	var out []gallery.Sample
	for _, x := range xs {
		if x.BackboneID() == backbone {
			out = append(out, gallery.Sample{ID: x.ID, Embedding: x.Embedding, Quality: x.Quality})
		}
	}
	return out
}

func galleryPerson(p store.Person, samples []store.Sample, negs []store.Negative, backbone string) gallery.Person {
	gp := gallery.Person{ID: p.ID, Name: p.Name}
	for _, s := range samples {
		if s.BackboneID() == backbone {
			gp.Samples = append(gp.Samples, gallery.Sample{ID: s.ID, Embedding: s.Embedding, Quality: s.Quality})
		}
	}
	for _, n := range negs {
		if n.BackboneID() == backbone {
			gp.Negatives = append(gp.Negatives, gallery.Sample{ID: n.ID, Embedding: n.Embedding})
		}
	}
	return gp
}

func storeClusters(cs []gallery.Cluster, head string) store.Clusters {
	out := store.Clusters{Head: head, Updated: time.Now().UTC()}
	for _, c := range cs {
		out.Clusters = append(out.Clusters, store.Cluster{Centroid: c.Centroid, Spread: c.Spread, Count: c.Count, Samples: c.Samples})
	}
	return out
}

// storeError maps store failures to enrollment errors.
func storeError(err error) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return err
	case errors.Is(err, store.ErrNameTaken):
		return ErrNameTaken.with(nil, "%v", err)
	case errors.Is(err, store.ErrInvalidName):
		return ErrInvalidName.with(nil, "%v", err)
	case errors.Is(err, store.ErrPersonNotFound):
		return ErrUnknownPerson.with(nil, "%v", err)
	case errors.Is(err, store.ErrInvalidEmbedding):
		return ErrBadRequest.with(err, "")
	case errors.Is(err, store.ErrDiskFull):
		return ErrStorageFull.with(err, "%s", ErrStorageFull.msg)
	}
	return ErrInternal.with(err, "store")
}

// noUsableFace builds the error for a request where every image was
// refused: the specific code when they all failed the same way.
func noUsableFace(images []ImageResult) error {
	code := ""
	var reasons []string
	for _, ir := range images {
		if code == "" {
			code = ir.Code
		} else if code != ir.Code {
			code = ErrNoUsableFace.code
		}
		reasons = append(reasons, ir.Name+": "+ir.Reason)
	}
	msg := "no usable face (" + strings.Join(reasons, "; ") + ")"
	if code == "" || code == ErrNoUsableFace.code {
		return ErrNoUsableFace.with(nil, "%s", msg)
	}
	return &Error{code: code, msg: msg, err: ErrNoUsableFace}
}

func codeError(code string) *Error {
	for _, e := range []*Error{ErrPoorQuality, ErrSeveralFaces, ErrBadImage, ErrNoUsableFace} {
		if e.code == code {
			return e
		}
	}
	return ErrNoUsableFace
}

// found is the result of looking for the face to enroll in one image.
type found struct {
	face *face.Face
	n    int
}

// faceOf decodes, detects and checks one image. code is "" when the face is
// usable.
func (e *Enroller) faceOf(img Image) (found, string, string) {
	if len(img.Data) == 0 {
		return found{}, ErrBadImage.code, "empty image"
	}
	if len(img.Data) > e.opts.MaxImageBytes {
		return found{}, ErrBadImage.code, fmt.Sprintf("image of %d bytes, at most %d", len(img.Data), e.opts.MaxImageBytes)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(img.Data))
	if err != nil {
		return found{}, ErrBadImage.code, "not a JPEG or PNG image: " + err.Error()
	}
	if format != "jpeg" && format != "png" {
		return found{}, ErrBadImage.code, "unsupported image format " + format + " (JPEG or PNG)"
	}
	faces, err := e.find.DetectBytes(img.Data)
	if err != nil {
		return found{}, ErrBadImage.code, err.Error()
	}
	f := found{n: len(faces)}
	if len(faces) == 0 {
		return f, ErrNoUsableFace.code, "no face found"
	}
	i, ok := MainFace(faces, cfg.Width, cfg.Height, e.opts.DominantRatio)
	if !ok {
		return f, ErrSeveralFaces.code, fmt.Sprintf("%d faces of similar prominence", len(faces))
	}
	f.face = &faces[i]
	if err := f.face.Chip.Validate(); err != nil {
		return f, ErrBadImage.code, err.Error()
	}
	if q := f.face.Quality; q.Score < e.opts.MinQuality {
		why := q.Issue
		if why == "" {
			why = "low quality"
		}
		return f, ErrPoorQuality.code, fmt.Sprintf("%s (quality %.2f < %.2f)", why, q.Score, e.opts.MinQuality)
	}
	return f, "", ""
}

// MainFace returns the index of the most prominent face, the one a photo
// of a person is about: prominence is the box area weighted by
// (1 - distance of the box centre from the image centre / half diagonal)^2,
// so a large face at the border loses to the centred subject. ok is false
// when another face is more than 1/ratio as prominent (ratio <= 1: the most
// prominent face is always returned). width and height are the image's
// (0: use the faces' bounding box).
func MainFace(faces []face.Face, width, height int, ratio float64) (int, bool) {
	if len(faces) == 0 {
		return -1, false
	}
	if width <= 0 || height <= 0 {
		var bb image.Rectangle
		for _, f := range faces {
			bb = bb.Union(f.Box)
		}
		width, height = bb.Max.X, bb.Max.Y
	}
	cx, cy := float64(width)/2, float64(height)/2
	half := math.Hypot(cx, cy)
	best, second := -1.0, -1.0
	bi := -1
	for i, f := range faces {
		b := f.Box
		area := float64(b.Dx()) * float64(b.Dy())
		d := math.Hypot(float64(b.Min.X+b.Max.X)/2-cx, float64(b.Min.Y+b.Max.Y)/2-cy)
		w := max(0, 1-d/max(half, 1))
		p := area * w * w
		if p > best {
			best, second, bi = p, best, i
		} else if p > second {
			second = p
		}
	}
	if ratio <= 1 || len(faces) == 1 {
		return bi, true
	}
	return bi, best >= ratio*second && best > 0
}
