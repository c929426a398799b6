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
	s.keepUnknownCrop(id.ID, faces)
	return id.ID, nil
}

// keepUnknownCrop stores the best face crop of a track filed under an
// unknown-face cluster, the picture the web page shows (store keeps the
// last few per cluster). Best effort: a failure costs a thumbnail, never
// the observation.
func (s *Service) keepUnknownCrop(id string, faces []gallery.TrackFace) {
	best := -1
	for i, f := range faces {
		if len(f.Crop.Pix) > 0 && (best < 0 || f.Quality > faces[best].Quality) {
			best = i
		}
	}
	if best < 0 {
		return
	}
	png, err := s.o.Enroller.EncodeCrop(faces[best].Crop)
	if err != nil || png == nil {
		return
	}
	if err := s.o.Store.PutUnknownCrop(id, png); err != nil {
		s.log.Debug("unknown-face crop not kept", "unknown", id, "err", err)
	}
}
