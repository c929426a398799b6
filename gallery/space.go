package gallery

import "math"

// Space describes a backbone's embedding space as the gallery, the tracker
// and the unknown clustering see it: every distance here is between
// L2-normalised vectors (0..2). The numbers depend on the network (the dlib
// ResNet puts two strangers ~0.56 apart, MobileFaceNet ~1.4), so each
// backbone brings its own (infer.Backbone.Space); they were measured with
// edged's detector and aligner on the LFW dev fold, so they are tuned on
// that fold.
type Space struct {
	// Name is the backbone id the numbers were measured with.
	Name string
	// The calibration prior: the distance between a face and the
	// normalised mean of k shots of another person is about normal with
	// mean ImpostorMean + ImpostorMeanK/k^1.5 and sd ImpostorSD; a face of
	// the same person lies at GenuineMean + GenuineMeanK/k^0.75 with sd
	// GenuineSD + GenuineSDK/k.
	ImpostorMean, ImpostorMeanK, ImpostorSD      float64
	GenuineMean, GenuineMeanK                    float64
	GenuineSD, GenuineSDK                        float64
	MinThreshold, MaxThreshold                   float64 // the fitted threshold stays in this range
	Margin, ClusterRadius                        float64 // Options defaults
	TrackSameFace, TrackOtherFace, UnknownRadius float64 // TrackerOptions, UnknownOptions defaults
}

// DlibSpace is the dlib ResNet's space (the defaults of every option here
// when no Space is given).
var DlibSpace = Space{
	Name:         "dlib",
	ImpostorMean: 0.532, ImpostorMeanK: 0.035, ImpostorSD: 0.058,
	GenuineMean: 0.22, GenuineMeanK: 0.091,
	GenuineSD: 0.034, GenuineSDK: 0.018,
	MinThreshold: 0.2, MaxThreshold: 0.5,
	Margin: 0.03, ClusterRadius: 0.42,
	TrackSameFace: 0.3, TrackOtherFace: 0.45, UnknownRadius: 0.36,
}

func (s Space) orDefault() Space {
	if s.ImpostorMean == 0 {
		return DlibSpace
	}
	return s
}

func (s Space) impostorMean(k float64) float64 {
	return s.ImpostorMean + s.ImpostorMeanK/math.Pow(max(k, 1), 1.5)
}
func (s Space) genuineMean(k float64) float64 {
	return s.GenuineMean + s.GenuineMeanK/math.Pow(max(k, 1), 0.75)
}
func (s Space) genuineSD(k float64) float64 { return s.GenuineSD + s.GenuineSDK/max(k, 1) }

// MobileFaceNetSpace is MobileFaceNet's space (192-d, ArcFace-style
// training: angular margins spread identities far wider than the dlib
// ResNet does). The prior was fitted by scripts/fit-space.py on half of the
// LFW dev fold's people and checked on the other half (impostor means
// within 0.005, genuine within 0.03); the radii are dlib's tuned values
// mapped by where they sit between same-person (0.72) and different-person
// (1.40) distances of single faces. Tuned on the dev fold.
var MobileFaceNetSpace = Space{
	Name:         "mobilefacenet",
	ImpostorMean: 1.391, ImpostorMeanK: 0.005, ImpostorSD: 0.127,
	GenuineMean: 0.513, GenuineMeanK: 0.204,
	GenuineSD: 0.113, GenuineSDK: 0.019,
	MinThreshold: 0.34, MaxThreshold: 1.22,
	Margin: 0.088, ClusterRadius: 0.99,
	TrackSameFace: 0.63, TrackOtherFace: 1.08, UnknownRadius: 0.81,
}

// scaled returns the space with every distance multiplied by f (a
// projector's DistanceScale); the thresholds stay within 0..2.
func (s Space) scaled(f float64) Space {
	if f == 1 || f <= 0 {
		return s
	}
	s = s.orDefault()
	s.ImpostorMean *= f
	s.ImpostorMeanK *= f
	s.ImpostorSD *= f
	s.GenuineMean *= f
	s.GenuineMeanK *= f
	s.GenuineSD *= f
	s.GenuineSDK *= f
	s.MinThreshold = min(2, s.MinThreshold*f)
	s.MaxThreshold = min(2, s.MaxThreshold*f)
	return s
}
