package service

import (
	"errors"

	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/pipeline"
)

var _ pipeline.UnknownSink = (*Service)(nil)

// AssignUnknown implements pipeline.UnknownSink: the good faces of a track
// decided unknown join their unknown-N identity (gallery.Unknowns), which
// the enroller stores. It returns "" when no face was good enough.
func (s *Service) AssignUnknown(camera string, faces []gallery.TrackFace) (string, error) {
	if s.o.Unknowns == nil {
		return "", errors.New("unknown clustering is off")
	}
	ufs := make([]gallery.UnknownFace, len(faces))
	for i, f := range faces {
		ufs[i] = gallery.UnknownFace{Embedding: f.Embedding, Quality: f.Quality, Time: f.Time, Camera: camera}
	}
	id, _, ok, err := s.o.Enroller.ObserveUnknown(s.o.Unknowns, ufs)
	if err != nil || !ok {
		return "", err
	}
	return id.ID, nil
}
