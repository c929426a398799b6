// Package backend implements web.Backend over the daemon's service layer
// (package service, the same calls the MQTT commands make) and its store
// (face crops for thumbnails, head versions), so the web page and MQTT
// behave the same.
//
// # Usage
//
//	b, err := backend.New(backend.Options{Service: svc, Store: st, Enroller: en,
//		Gallery: g, Unknowns: unknowns, Frames: grabFrame, Logger: log})
//	srv, err := web.New(web.Options{Backend: b, Auth: auth, Logger: log})
//	// feed it the live events:
//	b.Observe(pipelineEvent)      // from the pipeline (a service.Observer)
//	b.ObservePayload(cam, payload) // any other event (fine-tune progress)
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/service"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/web"
)

// FrameFunc returns a camera's latest frame as a JPEG with the face boxes
// and names drawn (the daemon implements it with GoCV).
type FrameFunc func(ctx context.Context, camera string) ([]byte, error)

// Options configure a Backend.
type Options struct {
	// Service, Store, Enroller and Gallery are the daemon's; required.
	Service  *service.Service
	Store    *store.Store
	Enroller *enroll.Enroller
	Gallery  *gallery.Gallery
	// Unknowns is the live unknown-face clustering; nil when it is off
	// (a dismissed cluster is then only deleted from the store).
	Unknowns *gallery.Unknowns
	// Frames grabs a camera's latest frame; nil: the page says frames are
	// unavailable.
	Frames FrameFunc
	// Finetune says whether fine-tuning is on (finetune.enabled).
	Finetune bool
	// Limits are the MQTT command limits; the web's requests are
	// validated with them so both paths accept the same input. Default
	// mqtt.DefaultLimits() for each zero field.
	Limits mqtt.Limits
	// Logger; default discard.
	Logger *slog.Logger
}

// Backend implements web.Backend. Its methods are safe for concurrent use.
type Backend struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	subs     map[chan web.Event]struct{}
	reasons  map[string]string // camera -> why it is down
	finetune web.Finetune      // from the last finetune event
}

var _ web.Backend = (*Backend)(nil)
var _ service.Observer = (*Backend)(nil)

// New returns the backend.
func New(o Options) (*Backend, error) {
	if o.Service == nil || o.Store == nil || o.Enroller == nil || o.Gallery == nil {
		return nil, errors.New("web backend: service, store, enroller and gallery are required")
	}
	o.Limits = o.Limits.WithDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Backend{o: o, log: o.Logger.With("component", "web-backend"),
		subs: map[chan web.Event]struct{}{}, reasons: map[string]string{}}, nil
}

// reqID marks the requests made from the page (the enrolled event's
// request_id).
const reqID = "web"

// People implements web.Backend: the MQTT list, with each person's picture.
func (b *Backend) People(ctx context.Context) ([]web.Person, error) {
	res, err := b.o.Service.List(ctx, mqtt.ListRequest{ID: reqID})
	if err != nil {
		return nil, err
	}
	out := make([]web.Person, len(res.People))
	err = b.o.Store.View(func(tx *store.Tx) error {
		for i, p := range res.People {
			out[i] = person(p)
			samples, err := tx.Samples(p.PersonID)
			if err != nil {
				return err
			}
			out[i].Thumb, out[i].NoThumb = pickThumb(samples)
		}
		return nil
	})
	return out, err
}

func person(p mqtt.Person) web.Person {
	return web.Person{ID: p.PersonID, Name: p.Name, Samples: p.Samples, Created: p.Created.Time,
		LastSeen: p.LastSeen.Time, LastCamera: p.LastCamera}
}

// pickThumb picks the best-quality sample with a crop.
func pickThumb(samples []store.Sample) (id, why string) {
	best := -1
	for i, s := range samples {
		if s.HasCrop && (best < 0 || s.Quality > samples[best].Quality) {
			best = i
		}
	}
	if best >= 0 {
		return samples[best].ID, ""
	}
	for _, s := range samples {
		if s.Source == store.SourceUnknown {
			return "", "enrolled from an unknown face: its pictures are not kept with the samples (yet)"
		}
	}
	return "", "no sample kept its face crop (store.keep_crops is off, or they were enrolled before edged kept crops)"
}

// Person implements web.Backend.
func (b *Backend) Person(ctx context.Context, personID string) (web.PersonDetail, error) {
	req := mqtt.GetRequest{ID: reqID, PersonID: personID}
	if err := req.Validate(b.o.Limits); err != nil {
		return web.PersonDetail{}, err
	}
	p, err := b.o.Service.Get(ctx, req)
	if err != nil {
		return web.PersonDetail{}, err
	}
	d := web.PersonDetail{Person: person(p)}
	err = b.o.Store.View(func(tx *store.Tx) error {
		samples, err := tx.Samples(personID)
		if err != nil {
			return err
		}
		d.Thumb, d.NoThumb = pickThumb(samples)
		for _, s := range samples {
			d.SampleList = append(d.SampleList, web.Sample{ID: s.ID, Quality: float64(s.Quality), Source: s.Source,
				Ref: s.Ref, HasCrop: s.HasCrop, Created: s.Created})
		}
		return nil
	})
	return d, err
}

// Rename implements web.Backend (the MQTT rename).
func (b *Backend) Rename(ctx context.Context, personID, name string) (web.Person, error) {
	req := mqtt.RenameRequest{ID: reqID, PersonID: personID, Name: name}
	if err := req.Validate(b.o.Limits); err != nil {
		return web.Person{}, err
	}
	p, err := b.o.Service.Rename(ctx, req)
	if err != nil {
		return web.Person{}, err
	}
	return person(p), nil
}

// DeletePerson implements web.Backend (the MQTT delete).
func (b *Backend) DeletePerson(ctx context.Context, personID string) error {
	req := mqtt.DeleteRequest{ID: reqID, PersonID: personID}
	if err := req.Validate(b.o.Limits); err != nil {
		return err
	}
	res, err := b.o.Service.Delete(ctx, req)
	if err != nil {
		return err
	}
	b.ObservePayload("", mqtt.Deleted{PersonID: res.PersonID, Name: res.Name, Samples: res.Samples, Time: mqtt.At(time.Now())})
	return nil
}

// RemoveSample implements web.Backend: the sample goes, no negative is
// recorded (Feedback with the sample records one). It is the enroller's
// RemoveSample, which keeps the clusters and the gallery in step.
func (b *Backend) RemoveSample(_ context.Context, personID, sampleID string) error {
	if !validID(personID) || !validID(sampleID) {
		return web.Errorf(web.CodeNotFound, "no sample %q of person %q", sampleID, personID)
	}
	_, err := b.o.Enroller.RemoveSample(personID, sampleID)
	if errors.Is(err, store.ErrPersonNotFound) {
		return web.Errorf(web.CodeNotFound, "person %q not found", personID)
	}
	return err
}

// Feedback implements web.Backend (the MQTT feedback).
func (b *Backend) Feedback(ctx context.Context, f web.Feedback) error {
	req := mqtt.FeedbackRequest{ID: reqID, PersonID: f.PersonID, SampleID: f.SampleID, Camera: f.Camera, Track: f.Track}
	if err := req.Validate(b.o.Limits); err != nil {
		return err
	}
	_, err := b.o.Service.Feedback(ctx, req)
	return err
}

// SampleThumbnail implements web.Backend: the sample's stored face crop.
func (b *Backend) SampleThumbnail(_ context.Context, personID, sampleID string) ([]byte, error) {
	if !validID(personID) || (sampleID != "" && !validID(sampleID)) {
		return nil, nil
	}
	var crop []byte
	err := b.o.Store.View(func(tx *store.Tx) error {
		if sampleID == "" {
			samples, err := tx.Samples(personID)
			if err != nil {
				return err
			}
			if sampleID, _ = pickThumb(samples); sampleID == "" {
				return nil
			}
		}
		var err error
		crop, err = tx.Crop(personID, sampleID)
		return err
	})
	return crop, err
}

// Unknowns implements web.Backend: the MQTT list's unknown clusters, with
// their kept crops, most recently seen first.
func (b *Backend) Unknowns(ctx context.Context) ([]web.Unknown, error) {
	res, err := b.o.Service.List(ctx, mqtt.ListRequest{ID: reqID, Unknown: true})
	if err != nil {
		return nil, err
	}
	out := make([]web.Unknown, len(res.Unknown))
	err = b.o.Store.View(func(tx *store.Tx) error {
		for i, u := range res.Unknown {
			out[i] = web.Unknown{ID: u.UnknownID, Count: u.Count, FirstSeen: u.FirstSeen.Time, LastSeen: u.LastSeen.Time, Camera: u.Camera}
			slots, err := tx.UnknownCropSlots(u.UnknownID)
			if err != nil {
				return err
			}
			out[i].Thumbs = newestFirst(slots, u.Count)
			if len(slots) == 0 {
				out[i].NoThumb = "no face crop was kept for these faces (they were filed before edged kept crops of unknown faces)"
			}
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastSeen.After(out[j].LastSeen) })
	return out, err
}

// newestFirst orders the filled slots from the one written last: the
// store writes appearance n into slot (n-1) mod MaxUnknownCrops.
func newestFirst(slots []int, count int) []int {
	have := map[int]bool{}
	for _, s := range slots {
		have[s] = true
	}
	out := []int{}
	last := 0
	if count > 0 {
		last = (count - 1) % store.MaxUnknownCrops
	}
	for k := 0; k < store.MaxUnknownCrops; k++ {
		s := ((last-k)%store.MaxUnknownCrops + store.MaxUnknownCrops) % store.MaxUnknownCrops
		if have[s] {
			out = append(out, s)
		}
	}
	return out
}

// UnknownThumbnail implements web.Backend.
func (b *Backend) UnknownThumbnail(_ context.Context, unknownID string, i int) ([]byte, error) {
	var crop []byte
	err := b.o.Store.View(func(tx *store.Tx) error {
		if i < 0 {
			u, err := tx.Unknown(unknownID)
			if errors.Is(err, store.ErrUnknownNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			slots, err := tx.UnknownCropSlots(unknownID)
			if err != nil {
				return err
			}
			order := newestFirst(slots, u.Count)
			if len(order) == 0 {
				return nil
			}
			i = order[0]
		}
		var err error
		crop, err = tx.UnknownCrop(unknownID, i)
		return err
	})
	return crop, err
}

// EnrollUnknown implements web.Backend (the MQTT enroll with from_unknown).
func (b *Backend) EnrollUnknown(ctx context.Context, unknownID, name, personID string) (web.EnrollResult, error) {
	req := mqtt.EnrollRequest{ID: reqID, FromUnknown: unknownID, Name: name, PersonID: personID}
	if err := req.Validate(b.o.Limits); err != nil {
		return web.EnrollResult{}, err
	}
	res, err := b.o.Service.Enroll(ctx, req)
	if err != nil {
		return web.EnrollResult{}, err
	}
	b.ObservePayload("", mqtt.Enrolled{PersonID: res.PersonID, Name: res.Name, Created: res.Created, SamplesAdded: res.SamplesAdded,
		SamplesTotal: res.SamplesTotal, Source: mqtt.SourceUnknown, RequestID: reqID, Time: mqtt.At(time.Now())})
	return web.EnrollResult{PersonID: res.PersonID, Name: res.Name, Created: res.Created,
		SamplesAdded: res.SamplesAdded, SamplesTotal: res.SamplesTotal}, nil
}

// DismissUnknown implements web.Backend: the cluster and its crops are
// deleted from the store and forgotten by the live clustering (the same
// face seen again starts a new cluster).
func (b *Backend) DismissUnknown(_ context.Context, unknownID string) error {
	// Forget it first: an appearance filed between the two steps would
	// otherwise write the cluster back.
	if b.o.Unknowns != nil {
		b.o.Unknowns.Remove(unknownID)
	}
	err := b.o.Store.Update(func(tx *store.Tx) error { return tx.DeleteUnknown(unknownID) })
	if errors.Is(err, store.ErrUnknownNotFound) {
		return web.Errorf("unknown_cluster", "%s: not found (enrolled or dismissed already?)", unknownID)
	}
	return err
}

// Cameras implements web.Backend: the MQTT status's cameras, with the
// reason of the last "down" event.
func (b *Backend) Cameras(ctx context.Context) ([]web.Camera, error) {
	st, err := b.o.Service.Status(ctx, mqtt.StatusRequest{ID: reqID})
	if err != nil {
		return nil, err
	}
	out := make([]web.Camera, len(st.Cameras))
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, c := range st.Cameras {
		out[i] = web.Camera{Name: c.Name, State: c.Status, FPS: c.FPS, Drops: c.Drops}
		if c.Status == mqtt.CameraDown {
			out[i].Reason = b.reasons[c.Name]
			if out[i].Reason == "" {
				out[i].Reason = "no frame yet"
			}
		}
	}
	return out, nil
}

// CameraFrame implements web.Backend.
func (b *Backend) CameraFrame(ctx context.Context, camera string) ([]byte, error) {
	if b.o.Frames == nil {
		return nil, web.Errorf(web.CodeUnavailable, "this edged does not serve camera frames")
	}
	return b.o.Frames(ctx, camera)
}

// Model implements web.Backend.
func (b *Backend) Model(ctx context.Context) (web.Model, error) {
	hs, err := b.heads().List()
	if err != nil {
		return web.Model{}, err
	}
	m := web.Model{Backbone: b.o.Enroller.Backbone()}
	for _, h := range hs {
		if h.Active && h.Usable {
			m.ActiveHead = h.ID
		}
		m.Heads = append(m.Heads, web.Head{ID: h.ID, Created: h.Created, Backbone: h.BackboneID(), Active: h.Active, Note: h.Note,
			Metrics: h.Metrics, Usable: h.Usable, Why: h.Why})
	}
	b.mu.Lock()
	m.Finetune = b.finetune
	b.mu.Unlock()
	m.Finetune.Enabled = b.o.Finetune
	if st, err := b.o.Service.Status(ctx, mqtt.StatusRequest{ID: reqID}); err == nil && st.Finetune != "" {
		m.Finetune.State = st.Finetune
	}
	return m, nil
}

// heads are the store's head versions as the running backbone sees them
// (the rules `edged model` follows too).
func (b *Backend) heads() enroll.Heads {
	return enroll.Heads{Store: b.o.Store, Backbone: b.o.Enroller.Backbone()}
}

// ActivateHead implements web.Backend: the store's active head changes
// and the running gallery re-projects into its space at once (as after a
// fine-tune), so no restart is needed.
func (b *Backend) ActivateHead(ctx context.Context, headID string) error {
	if err := b.checkIdle(ctx); err != nil {
		return err
	}
	if headID == "" {
		if err := b.heads().Deactivate(); err != nil {
			return err
		}
		return b.applyHead()
	}
	var unusable *enroll.UnusableHeadError
	_, err := b.heads().Activate(headID)
	switch {
	case errors.Is(err, store.ErrHeadNotFound):
		return web.Errorf(web.CodeNotFound, "head %q not found", headID)
	case errors.As(err, &unusable):
		return web.Errorf(web.CodeConflict, "head %s cannot be activated: %s", headID, unusable.Why)
	case err != nil:
		return err
	}
	return b.applyHead()
}

// applyHead switches the gallery to the store's active head.
func (b *Backend) applyHead() error {
	p, err := enroll.ActiveProjector(b.o.Store, b.o.Enroller.Backbone())
	if err != nil {
		return fmt.Errorf("active head: %w", err)
	}
	if err := b.o.Gallery.SetProjector(p); err != nil {
		return fmt.Errorf("switch the gallery to the head: %w", err)
	}
	return nil
}

// checkIdle refuses a head change while a fine-tune runs (its result
// would replace the choice a moment later).
func (b *Backend) checkIdle(ctx context.Context) error {
	st, err := b.o.Service.Status(ctx, mqtt.StatusRequest{ID: reqID})
	if err != nil {
		return err
	}
	if st.Finetune != "" {
		return web.Errorf(web.CodeConflict, "a fine-tune is running (%s): wait for it to end", st.Finetune)
	}
	return nil
}

// RollbackHead implements web.Backend, as `edged model rollback`: the
// version created before the active one that is usable, else none.
func (b *Backend) RollbackHead(ctx context.Context) (string, error) {
	if err := b.checkIdle(ctx); err != nil {
		return "", err
	}
	_, to, err := b.heads().Rollback()
	if errors.Is(err, enroll.ErrNoActiveHead) {
		return "", web.Errorf(web.CodeConflict, "%v", err)
	}
	if err != nil {
		return "", err
	}
	return to.ID, b.applyHead()
}

// StartFinetune implements web.Backend (the MQTT finetune).
func (b *Backend) StartFinetune(ctx context.Context) (string, error) {
	res, err := b.o.Service.Finetune(ctx, mqtt.FinetuneRequest{ID: reqID})
	if err != nil {
		return "", err
	}
	return res.JobID, nil
}

// Subscribe implements web.Backend.
func (b *Backend) Subscribe(ctx context.Context) <-chan web.Event {
	ch := make(chan web.Event, 256)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
		close(ch)
	}()
	return ch
}

// Observe implements service.Observer: give it the pipeline's events
// (recognized, unknown, camera up/down).
func (b *Backend) Observe(e pipeline.Event) {
	if p, ok := e.Payload.(mqtt.Payload); ok {
		b.ObservePayload(e.Camera, p)
	}
}

// ObservePayload takes any event payload (e.g. the fine-tune job's
// mqtt.Finetune progress) for the page. It never blocks: a subscriber
// that is behind loses the event.
func (b *Backend) ObservePayload(camera string, p mqtt.Payload) {
	e, ok := toEvent(camera, p)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch x := p.(type) {
	case mqtt.Camera:
		if x.State == mqtt.CameraDown {
			b.reasons[x.Camera] = x.Reason
		} else {
			delete(b.reasons, x.Camera)
		}
	case mqtt.Finetune:
		b.finetune = web.Finetune{State: x.State, JobID: x.JobID, Progress: x.Progress, Epoch: x.Epoch, Epochs: x.Epochs,
			Head: x.HeadVersion, Message: x.Message, Time: x.Time.Time}
	}
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// validID reports whether id can name a stored person or sample (the
// checks the MQTT requests make), so a path like ../x never reaches a key.
func validID(id string) bool {
	return id != "" && len(id) <= 64 && mqtt.CheckSegment(id) == nil
}

func toEvent(camera string, p mqtt.Payload) (web.Event, bool) {
	switch x := p.(type) {
	case mqtt.Recognized:
		return web.Event{Type: web.EventRecognized, Time: x.Time.Time, Camera: x.Camera, Track: x.Track,
			PersonID: x.PersonID, Name: x.Name, Confidence: x.Confidence}, true
	case mqtt.Unknown:
		return web.Event{Type: web.EventUnknown, Time: x.Time.Time, Camera: x.Camera, Track: x.Track,
			UnknownID: x.UnknownID, Confidence: x.Confidence}, true
	case mqtt.Enrolled:
		return web.Event{Type: web.EventEnrolled, Time: x.Time.Time, PersonID: x.PersonID, Name: x.Name, State: x.Source}, true
	case mqtt.Deleted:
		return web.Event{Type: web.EventDeleted, Time: x.Time.Time, PersonID: x.PersonID, Name: x.Name}, true
	case mqtt.Camera:
		return web.Event{Type: web.EventCamera, Time: x.Time.Time, Camera: x.Camera, State: x.State, Reason: x.Reason}, true
	case mqtt.Finetune:
		return web.Event{Type: web.EventFinetune, Time: x.Time.Time, State: x.State, Reason: x.Message, Progress: x.Progress}, true
	}
	_ = camera
	return web.Event{}, false
}
