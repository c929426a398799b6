package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/pipeline"
	"github.com/edged-dev/edged/store"
)

// Finetuner runs the background fine-tune of the matching head.
type Finetuner interface {
	// Trigger asks for a (debounced) run after enrollments.
	Trigger()
	// Start starts a run now. loss "" and epochs 0 take the configured
	// defaults; a dry run plans without training. It returns the job id
	// and the planned epochs, or an error with code conflict when a run
	// is already going.
	Start(ctx context.Context, loss string, epochs int, dryRun bool) (jobID string, planned int, err error)
	// State is "" when idle, else the running job's state.
	State() string
}

// Cameras is what the service needs from the running pipeline.
type Cameras interface {
	// CameraStats lists the running cameras.
	CameraStats() []pipeline.CameraStats
	// TrackEmbeddings returns the raw embeddings of a camera's track, while
	// the recognizer still keeps it.
	TrackEmbeddings(camera string, track uint64) ([][]float32, bool)
}

// HealthOK is the status reply's health when nothing is degraded.
const HealthOK = "ok"

// Options configure a Service.
type Options struct {
	Device   string
	Version  string
	Store    *store.Store
	Gallery  *gallery.Gallery
	Enroller *enroll.Enroller
	// Unknowns clusters unknown faces (loaded with enroll.LoadUnknowns);
	// nil turns unknown clustering off.
	Unknowns *gallery.Unknowns
	// Finetune may be nil (the finetune command answers "unavailable").
	Finetune Finetuner
	// Cameras may be nil (no camera: status lists none, feedback by track
	// and enroll from a camera answer unknown_camera).
	Cameras Cameras
	// CameraTimeout is how long an enroll from a camera waits for faces
	// when the request gives no timeout_s. Default 30s.
	CameraTimeout time.Duration
	// MinEnrollQuality is the quality a camera face needs to be enrolled.
	// Default 0.5 (stricter than recognition: the gallery keeps it).
	MinEnrollQuality float32
	// Health reports the daemon's health for the status command (the
	// same words as /healthz: HealthOK or "degraded: ..."). Default: always
	// HealthOK.
	Health func() string
	Logger *slog.Logger
}

// Service implements mqtt.Service.
type Service struct {
	o     Options
	log   *slog.Logger
	start time.Time

	enrollMu sync.Mutex // one enrollment at a time (its event needs the request)
	cur      struct{ requestID, source string }

	mu       sync.Mutex
	seen     map[string]sighting // person id -> last recognition
	camState map[string]string   // camera -> up | down
	collect  *collector          // an enroll from a camera in progress
}

type sighting struct {
	camera string
	at     time.Time
}

var _ mqtt.Service = (*Service)(nil)
var _ Observer = (*Service)(nil)

// New returns the service. Store, Gallery and Enroller are required.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Gallery == nil || o.Enroller == nil {
		return nil, errors.New("service: store, gallery and enroller are required")
	}
	if o.CameraTimeout <= 0 {
		o.CameraTimeout = 30 * time.Second
	}
	if o.MinEnrollQuality <= 0 {
		o.MinEnrollQuality = 0.5
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{
		o: o, log: o.Logger.With("component", "service"), start: time.Now(),
		seen: map[string]sighting{}, camState: map[string]string{},
	}, nil
}

// SetCameras sets (or replaces, after a reload) the running pipeline.
func (s *Service) SetCameras(c Cameras) {
	s.mu.Lock()
	s.o.Cameras = c
	s.mu.Unlock()
}

func (s *Service) cameras() Cameras {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.Cameras
}

// Observe implements Observer: it keeps each person's last sighting and
// each camera's up/down state from the pipeline's events.
func (s *Service) Observe(e pipeline.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch p := e.Payload.(type) {
	case mqtt.Recognized:
		s.seen[p.PersonID] = sighting{camera: p.Camera, at: p.Time.Time}
	case mqtt.Camera:
		s.camState[p.Camera] = p.State
	}
}

// EnrollEvents is the enroll.Options.Events hook: the "enrolled" event and
// the person's retained state, appended in the enrollment's transaction.
func (s *Service) EnrollEvents(r enroll.Result) []store.OutboxEvent {
	src, reqID := s.cur.source, s.cur.requestID // set under enrollMu
	if src == "" {
		src = mqtt.SourceFile
		if r.Unknown != "" {
			src = mqtt.SourceUnknown
		}
	}
	now := time.Now()
	var out []store.OutboxEvent
	for _, p := range []mqtt.Payload{
		mqtt.Enrolled{PersonID: r.PersonID, Name: r.Name, Created: r.Created, SamplesAdded: r.Accepted,
			SamplesTotal: r.Samples, Source: src, RequestID: reqID, Time: mqtt.At(now)},
		s.personState(r.PersonID, r.Name),
	} {
		if ev, err := OutboxEvent("", p, now); err == nil {
			out = append(out, ev)
		} else {
			s.log.Error("enrolled event", "person", r.PersonID, "err", err)
		}
	}
	return out
}

func (s *Service) personState(id, name string) mqtt.PersonState {
	s.mu.Lock()
	last := s.seen[id]
	s.mu.Unlock()
	ps := mqtt.PersonState{PersonID: id, Name: name, Camera: last.camera}
	if !last.at.IsZero() {
		ps.LastSeen = mqtt.At(last.at)
	}
	return ps
}

// Enroll implements mqtt.Service.
func (s *Service) Enroll(ctx context.Context, req mqtt.EnrollRequest) (mqtt.EnrollResult, error) {
	var res enroll.Result
	var err error
	ctx = rememberEnroll(ctx, req.ID)
	switch {
	case len(req.Images) > 0:
		imgs := make([]enroll.Image, len(req.Images))
		for i, im := range req.Images {
			imgs[i] = enroll.Image{Name: fmt.Sprintf("images[%d]", i), Data: im.Data}
		}
		res, err = s.enrollLocked(req.ID, mqtt.SourceImages, func() (enroll.Result, error) {
			return s.o.Enroller.Enroll(ctx, enroll.Request{
				Name: req.Name, PersonID: req.PersonID, Images: imgs,
				Source: store.SourceMQTT, Ref: req.ID, AllOrNothing: true,
			})
		})
	case req.FromUnknown != "":
		res, err = s.enrollLocked(req.ID, mqtt.SourceUnknown, func() (enroll.Result, error) {
			return s.o.Enroller.EnrollUnknown(ctx, req.FromUnknown, req.Name, req.PersonID)
		})
		if err == nil && s.o.Unknowns != nil {
			s.o.Unknowns.Remove(req.FromUnknown) // the store deleted it with the enrollment
		}
	case req.Camera != "":
		var faces []enroll.Embedding
		if faces, err = s.collectFaces(ctx, req); err == nil {
			res, err = s.enrollLocked(req.ID, mqtt.SourceCamera, func() (enroll.Result, error) {
				return s.o.Enroller.EnrollEmbeddings(ctx, req.Name, req.PersonID, faces)
			})
		}
	default:
		err = mqtt.Errorf(mqtt.CodeMissingField, "images, from_unknown or camera: one source is required")
	}
	if err != nil {
		return mqtt.EnrollResult{}, replyError(err)
	}
	if s.o.Finetune != nil {
		s.o.Finetune.Trigger()
	}
	return enrollResult(res), nil
}

func (s *Service) enrollLocked(requestID, source string, fn func() (enroll.Result, error)) (enroll.Result, error) {
	s.enrollMu.Lock()
	defer s.enrollMu.Unlock()
	s.cur.requestID, s.cur.source = requestID, source
	defer func() { s.cur.requestID, s.cur.source = "", "" }()
	return fn()
}

// Delete implements mqtt.Service.
func (s *Service) Delete(_ context.Context, req mqtt.DeleteRequest) (mqtt.DeleteResult, error) {
	n, err := s.sampleCount(req.PersonID)
	if err != nil {
		return mqtt.DeleteResult{}, replyError(err)
	}
	p, err := s.o.Enroller.Delete(req.PersonID)
	if err != nil {
		return mqtt.DeleteResult{}, replyError(err)
	}
	s.mu.Lock()
	delete(s.seen, p.ID)
	s.mu.Unlock()
	now := time.Now()
	var evs []store.OutboxEvent
	if ev, err := OutboxEvent("", mqtt.Deleted{PersonID: p.ID, Name: p.Name, Samples: n, RequestID: req.ID, Time: mqtt.At(now)}, now); err == nil {
		evs = append(evs, ev)
	}
	if clr, err := mqtt.ClearRetained(mqtt.PersonStateTopic(p.ID)); err == nil {
		evs = append(evs, store.OutboxEvent{Topic: clr.Topic, Payload: clr.Payload, Retain: true, Time: now})
	}
	if err := s.o.Store.AppendEvents(evs...); err != nil {
		s.log.Error("deleted event", "person", p.ID, "err", err)
	}
	return mqtt.DeleteResult{PersonID: p.ID, Name: p.Name, Samples: n}, nil
}

func (s *Service) sampleCount(personID string) (int, error) {
	var n int
	err := s.o.Store.View(func(tx *store.Tx) error {
		if _, err := tx.Person(personID); err != nil {
			return err
		}
		var err error
		n, err = tx.SampleCount(personID)
		return err
	})
	return n, err
}

// Rename implements mqtt.Service.
func (s *Service) Rename(ctx context.Context, req mqtt.RenameRequest) (mqtt.Person, error) {
	if _, err := s.o.Store.Person(req.PersonID); err != nil {
		return mqtt.Person{}, replyError(err)
	}
	p, err := s.o.Enroller.Rename(req.PersonID, req.Name)
	if err != nil {
		return mqtt.Person{}, replyError(err)
	}
	if ev, err := OutboxEvent("", s.personState(p.ID, p.Name), time.Now()); err == nil {
		if err := s.o.Store.AppendEvents(ev); err != nil {
			s.log.Error("person state after rename", "person", p.ID, "err", err)
		}
	}
	return s.Get(ctx, mqtt.GetRequest{ID: req.ID, PersonID: p.ID})
}

// List implements mqtt.Service.
func (s *Service) List(_ context.Context, req mqtt.ListRequest) (mqtt.ListResult, error) {
	var out mqtt.ListResult
	err := s.o.Store.View(func(tx *store.Tx) error {
		people, err := tx.People()
		if err != nil {
			return err
		}
		out.People = make([]mqtt.Person, 0, len(people))
		for _, p := range people {
			mp, err := s.describe(tx, p)
			if err != nil {
				return err
			}
			out.People = append(out.People, mp)
		}
		if !req.Unknown {
			return nil
		}
		us, err := tx.Unknowns()
		if err != nil {
			return err
		}
		out.Unknown = make([]mqtt.UnknownCluster, 0, len(us))
		for _, u := range us {
			uc := mqtt.UnknownCluster{UnknownID: u.ID, Count: u.Count, FirstSeen: mqtt.At(u.FirstSeen), LastSeen: mqtt.At(u.LastSeen)}
			if len(u.Cameras) > 0 {
				uc.Camera = u.Cameras[len(u.Cameras)-1]
			}
			out.Unknown = append(out.Unknown, uc)
		}
		return nil
	})
	if err != nil {
		return mqtt.ListResult{}, replyError(err)
	}
	sort.SliceStable(out.People, func(i, j int) bool {
		return strings.ToLower(out.People[i].Name) < strings.ToLower(out.People[j].Name)
	})
	return out, nil
}

func (s *Service) describe(tx *store.Tx, p store.Person) (mqtt.Person, error) {
	n, err := tx.SampleCount(p.ID)
	if err != nil {
		return mqtt.Person{}, err
	}
	clusters := 0
	if cs, ok := s.o.Gallery.PersonClusters(p.ID); ok {
		clusters = len(cs)
	}
	mp := mqtt.Person{PersonID: p.ID, Name: p.Name, Samples: n, Clusters: clusters,
		Created: mqtt.At(p.Created), Updated: mqtt.At(p.Updated)}
	s.mu.Lock()
	if last, ok := s.seen[p.ID]; ok {
		mp.LastSeen, mp.LastCamera = mqtt.At(last.at), last.camera
	}
	s.mu.Unlock()
	return mp, nil
}

// Get implements mqtt.Service.
func (s *Service) Get(_ context.Context, req mqtt.GetRequest) (mqtt.Person, error) {
	var mp mqtt.Person
	err := s.o.Store.View(func(tx *store.Tx) error {
		p, err := tx.Person(req.PersonID)
		if err != nil {
			return err
		}
		mp, err = s.describe(tx, p)
		return err
	})
	if err != nil {
		return mqtt.Person{}, replyError(err)
	}
	return mp, nil
}

// Feedback implements mqtt.Service: the track's faces (or the stored
// sample) become negative samples of the wrong person; with
// correct_person_id the track's faces are enrolled for the right one.
func (s *Service) Feedback(ctx context.Context, req mqtt.FeedbackRequest) (mqtt.FeedbackResult, error) {
	if _, err := s.o.Store.Person(req.PersonID); err != nil {
		return mqtt.FeedbackResult{}, replyError(err)
	}
	if req.CorrectPersonID != "" {
		if _, err := s.o.Store.Person(req.CorrectPersonID); err != nil {
			return mqtt.FeedbackResult{}, replyError(err)
		}
	}
	var raws [][]float32
	var ref string
	var res mqtt.FeedbackResult
	if req.SampleID != "" {
		raw, err := s.removeSample(req.PersonID, req.SampleID)
		if err != nil {
			return res, replyError(err)
		}
		res.SamplesRemoved = 1
		ref = "sample/" + req.SampleID
		if raw != nil {
			raws = [][]float32{raw}
		}
	} else {
		cams := s.cameras()
		if cams == nil || !s.hasCamera(cams, req.Camera) {
			return res, mqtt.Errorf(mqtt.CodeUnknownCamera, "camera %q is not running", req.Camera)
		}
		var ok bool
		if raws, ok = cams.TrackEmbeddings(req.Camera, req.Track); !ok || len(raws) == 0 {
			return res, mqtt.Errorf(mqtt.CodeInvalidField, "track %d of camera %s: not found (edged keeps the last 256 tracks of each camera)", req.Track, req.Camera)
		}
		ref = TrackRef(req.Camera, req.Track)
		// Experience the track gave the wrong person goes (or moves to the
		// right one): it was never theirs.
		n, err := s.o.Enroller.ReassignExperience(req.PersonID, ref, req.CorrectPersonID)
		if err != nil {
			return res, replyError(err)
		}
		if n > 0 {
			s.log.Info("experience of a wrong track reassigned", "person", req.PersonID, "track", ref, "faces", n, "to", req.CorrectPersonID)
		}
	}
	for _, raw := range raws {
		if _, err := s.o.Enroller.Feedback(req.PersonID, raw, store.SourceTrack, ref); err != nil {
			return res, replyError(err)
		}
		res.NegativePairs++
	}
	if req.CorrectPersonID != "" {
		faces := make([]enroll.Embedding, len(raws))
		for i, r := range raws {
			faces[i] = enroll.Embedding{Embedding: r, Quality: 1, Source: store.SourceTrack, Ref: ref}
		}
		er, err := s.enrollLocked(req.ID, mqtt.SourceCamera, func() (enroll.Result, error) {
			return s.o.Enroller.EnrollEmbeddings(ctx, "", req.CorrectPersonID, faces)
		})
		if err != nil {
			return res, replyError(err)
		}
		res.SamplesAdded = er.Accepted
	}
	res.Recorded = true
	if s.o.Finetune != nil {
		s.o.Finetune.Trigger()
	}
	return res, nil
}

func (s *Service) hasCamera(c Cameras, name string) bool {
	for _, st := range c.CameraStats() {
		if st.Camera == name {
			return true
		}
	}
	return false
}

// removeSample deletes a stored sample of a person (it was someone else)
// and returns its embedding. It goes through the enroller, the one path that
// keeps the stored clusters and the gallery in step with the samples. A
// person's last sample cannot be removed (delete the person instead). The
// embedding is nil for a sample of another backbone (waiting to be
// re-embedded): it cannot be a negative of the active one.
func (s *Service) removeSample(personID, sampleID string) ([]float32, error) {
	removed, err := s.o.Enroller.RemoveSample(personID, sampleID)
	if err != nil {
		return nil, err
	}
	if removed.BackboneID() != s.o.Enroller.Backbone() {
		return nil, nil
	}
	return removed.Embedding, nil
}

// Finetune implements mqtt.Service.
func (s *Service) Finetune(ctx context.Context, req mqtt.FinetuneRequest) (mqtt.FinetuneResult, error) {
	if s.o.Finetune == nil {
		return mqtt.FinetuneResult{}, mqtt.Errorf(mqtt.CodeUnavailable, "fine-tuning is off (finetune.enabled: false)")
	}
	id, epochs, err := s.o.Finetune.Start(ctx, req.Loss, req.Epochs, req.DryRun)
	if err != nil {
		return mqtt.FinetuneResult{}, replyError(err)
	}
	state := mqtt.FinetuneStarted
	if req.DryRun {
		state = mqtt.FinetuneDone
	}
	return mqtt.FinetuneResult{JobID: id, State: state, Epochs: epochs}, nil
}

// Status implements mqtt.Service.
func (s *Service) Status(_ context.Context, _ mqtt.StatusRequest) (mqtt.StatusResult, error) {
	r := mqtt.StatusResult{Device: s.o.Device, Version: s.o.Version, UptimeS: time.Since(s.start).Round(time.Millisecond).Seconds()}
	info := s.o.Gallery.Info()
	r.People, r.Samples = info.People, info.Samples
	if us, err := s.o.Store.Unknowns(); err == nil {
		r.Unknown = len(us)
	}
	r.Model = s.o.Gallery.ProjectorID()
	if n, err := s.o.Store.OutboxLen(); err == nil {
		r.OutboxPending = n
	}
	if s.o.Finetune != nil {
		r.Finetune = s.o.Finetune.State()
	}
	r.Health = HealthOK
	if s.o.Health != nil {
		r.Health = s.o.Health()
	}
	r.Cameras = []mqtt.CameraStatus{}
	if cams := s.cameras(); cams != nil {
		for _, st := range cams.CameraStats() {
			s.mu.Lock()
			state := s.camState[st.Camera]
			s.mu.Unlock()
			if state == "" {
				state = mqtt.CameraUp
				if st.Frames == 0 {
					state = mqtt.CameraDown
				}
			}
			r.Cameras = append(r.Cameras, mqtt.CameraStatus{Name: st.Camera, Status: state, FPS: roundTo(st.FPS, 2), Drops: st.Dropped})
		}
	}
	return r, nil
}

func roundTo(x float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// replyError maps the errors of the store and the enroll package onto the
// MQTT reply codes; anything else stays as is (the router replies
// "internal" and logs it).
func replyError(err error) error {
	var me *mqtt.Error
	if errors.As(err, &me) {
		return me
	}
	var ee *enroll.Error
	if errors.As(err, &ee) {
		code := ee.Code()
		switch code {
		case "no_face", "poor_quality", "bad_image", "unknown_person", "unknown_cluster":
			// the same codes on both sides
		case "several_faces":
			code = mqtt.CodeNoFace // no single face to enroll; the message says why
		case "invalid_name", "bad_request":
			code = mqtt.CodeInvalidField
		case "name_taken", "last_sample":
			code = mqtt.CodeConflict
		case "storage_full":
			code = mqtt.CodeStorageFull
		default:
			return err
		}
		return mqtt.Errorf(code, "%s", ee.Error())
	}
	switch {
	case errors.Is(err, store.ErrPersonNotFound):
		return mqtt.Errorf(mqtt.CodeUnknownPerson, "%v", err)
	case errors.Is(err, store.ErrUnknownNotFound):
		return mqtt.Errorf(mqtt.CodeUnknownCluster, "%v", err)
	case errors.Is(err, store.ErrDiskFull):
		return mqtt.Errorf(mqtt.CodeStorageFull, "%v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	}
	return err
}

// SetFinetuner sets the fine-tune runner (the daemon starts it after the
// service exists).
func (s *Service) SetFinetuner(f Finetuner) {
	s.mu.Lock()
	s.o.Finetune = f
	s.mu.Unlock()
}
