package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg"
	"image/png"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeService is a Service with an in-memory gallery. It decodes images
// fully (like the daemon would before detection), commits only on success,
// and records every call that reached it, so tests can check that a bad
// command changed nothing.
type fakeService struct {
	mu     sync.Mutex
	people map[string]Person
	calls  []string
	next   int
	outbox *MemOutbox // optional: enroll / delete append events here

	block   chan struct{} // non-nil: Status waits for it (busy tests)
	started chan string   // non-nil: receives the id of each Status call
}

func newFakeService() *fakeService { return &fakeService{people: map[string]Person{}} }

var _ Service = (*fakeService)(nil)

func (s *fakeService) record(cmd, id string) {
	s.mu.Lock()
	s.calls = append(s.calls, cmd+":"+id)
	s.mu.Unlock()
}

// Calls returns the commands that reached the service ("enroll:r1").
func (s *fakeService) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// State is a canonical dump of the gallery.
func (s *fakeService) State() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b bytes.Buffer
	for _, id := range slices.Sorted(maps.Keys(s.people)) {
		p := s.people[id]
		fmt.Fprintf(&b, "%s=%s/%d;", id, p.Name, p.Samples)
	}
	return b.String()
}

func (s *fakeService) Enroll(ctx context.Context, r EnrollRequest) (EnrollResult, error) {
	s.record(CmdEnroll, r.ID)
	switch r.Name {
	case "NoFace":
		return EnrollResult{}, Errorf(CodeNoFace, "images[0]: no face found")
	case "Blurry":
		return EnrollResult{}, Errorf(CodePoorQuality, "images[0]: face too blurred")
	case "Boom":
		return EnrollResult{}, errors.New("badger: open /var/lib/edged/secret-key: permission denied")
	case "Panic":
		panic("fake service panic")
	}
	for i, im := range r.Images {
		if _, _, err := image.Decode(bytes.NewReader(im.Data)); err != nil {
			return EnrollResult{}, Errorf(CodeBadImage, "images[%d]: %v", i, err)
		}
	}
	n := len(r.Images)
	switch {
	case r.FromUnknown == "unknown-404":
		return EnrollResult{}, Errorf(CodeUnknownCluster, "no unknown cluster %q", r.FromUnknown)
	case r.FromUnknown != "":
		n = 3
	case r.Camera == "nocam":
		return EnrollResult{}, Errorf(CodeUnknownCamera, "no camera %q", r.Camera)
	case r.Camera != "":
		n = r.NextFaces
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, created := Person{}, true
	if r.PersonID != "" {
		var ok bool
		if p, ok = s.people[r.PersonID]; !ok {
			return EnrollResult{}, Errorf(CodeUnknownPerson, "no person %q", r.PersonID)
		}
		created = false
	} else {
		s.next++
		p = Person{PersonID: fmt.Sprintf("p%d", s.next), Name: r.Name, Created: At(time.Now())}
	}
	p.Samples += n
	s.people[p.PersonID] = p
	res := EnrollResult{PersonID: p.PersonID, Name: p.Name, Created: created, SamplesAdded: n, SamplesTotal: p.Samples}
	if s.outbox != nil {
		src := SourceImages
		if r.FromUnknown != "" {
			src = SourceUnknown
		} else if r.Camera != "" {
			src = SourceCamera
		}
		if _, err := s.outbox.AppendPayload(Enrolled{PersonID: p.PersonID, Name: p.Name, Created: created,
			SamplesAdded: n, SamplesTotal: p.Samples, Source: src, RequestID: r.ID, Time: At(time.Now())}); err != nil {
			return EnrollResult{}, err
		}
	}
	return res, nil
}

func (s *fakeService) Delete(ctx context.Context, r DeleteRequest) (DeleteResult, error) {
	s.record(CmdDelete, r.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.people[r.PersonID]
	if !ok {
		return DeleteResult{}, Errorf(CodeUnknownPerson, "no person %q", r.PersonID)
	}
	delete(s.people, r.PersonID)
	return DeleteResult{PersonID: p.PersonID, Name: p.Name, Samples: p.Samples}, nil
}

func (s *fakeService) Rename(ctx context.Context, r RenameRequest) (Person, error) {
	s.record(CmdRename, r.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.people[r.PersonID]
	if !ok {
		return Person{}, Errorf(CodeUnknownPerson, "no person %q", r.PersonID)
	}
	p.Name = r.Name
	s.people[r.PersonID] = p
	return p, nil
}

func (s *fakeService) List(ctx context.Context, r ListRequest) (ListResult, error) {
	s.record(CmdList, r.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	res := ListResult{People: []Person{}}
	for _, id := range slices.Sorted(maps.Keys(s.people)) {
		res.People = append(res.People, s.people[id])
	}
	return res, nil
}

func (s *fakeService) Get(ctx context.Context, r GetRequest) (Person, error) {
	s.record(CmdGet, r.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.people[r.PersonID]
	if !ok {
		return Person{}, Errorf(CodeUnknownPerson, "no person %q", r.PersonID)
	}
	return p, nil
}

func (s *fakeService) Feedback(ctx context.Context, r FeedbackRequest) (FeedbackResult, error) {
	s.record(CmdFeedback, r.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.people[r.PersonID]; !ok {
		return FeedbackResult{}, Errorf(CodeUnknownPerson, "no person %q", r.PersonID)
	}
	return FeedbackResult{Recorded: true, NegativePairs: 1}, nil
}

func (s *fakeService) Finetune(ctx context.Context, r FinetuneRequest) (FinetuneResult, error) {
	s.record(CmdFinetune, r.ID)
	return FinetuneResult{JobID: "job1", State: FinetuneStarted, Epochs: max(r.Epochs, 5)}, nil
}

func (s *fakeService) Status(ctx context.Context, r StatusRequest) (StatusResult, error) {
	s.record(CmdStatus, r.ID)
	if s.started != nil {
		s.started <- r.ID
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return StatusResult{}, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return StatusResult{Device: "test", Version: "test", People: len(s.people), Cameras: []CameraStatus{}}, nil
}

// testPNG encodes a w x h PNG with a gradient.
func testPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
