package gallery

import (
	"log/slog"
	"runtime"
)

// Options configure a Gallery. Zero fields take the defaults below
// (DefaultOptions spells them out).
type Options struct {
	// Space is the backbone's embedding space: the calibration prior and
	// the defaults of Margin and ClusterRadius. Default DlibSpace; the
	// daemon passes infer.Backbone.Space.
	Space Space `yaml:"-"`
	// Threshold is the largest distance (between L2-normalised vectors in
	// the matching space, 0..2) at which a face is accepted as its nearest
	// person. 0 (the default) fits it to the gallery so that about
	// TargetFAR of strangers would be accepted as somebody; see Calibration.
	Threshold float64 `yaml:"threshold"`
	// TargetFAR is the fraction of strangers the fitted threshold lets in
	// (accepted as anyone). Default 0.01.
	TargetFAR float64 `yaml:"target_far"`
	// Margin is how much nearer the best person must be than the second
	// best (or than a negative sample of the best person). Default
	// Space.Margin (0.03 for dlib).
	Margin float64 `yaml:"margin"`
	// ClusterRadius: a person's sample farther than this from every one of
	// their clusters starts a new cluster (people who look different with
	// and without glasses, years apart, ...). Default Space.ClusterRadius
	// (0.42 for dlib), below the distance at which strangers start to look
	// alike.
	ClusterRadius float64 `yaml:"cluster_radius"`
	// KNN, when > 0, adds a vote of the KNN nearest samples within the
	// threshold: the face is unknown unless its nearest person also has the
	// most of them. Default 0 (off): on the LFW dev fold (1, 3 and 5 shots)
	// the vote changed no decision of the nearest-cluster rule.
	KNN int `yaml:"knn"`
	// Workers is how many goroutines scan a large gallery. Default
	// min(2, GOMAXPROCS).
	Workers int `yaml:"workers"`
	// ExactLimit is the gallery size (clusters) up to which every entry is
	// compared exactly; larger galleries rank entries by a 256-bit binary
	// code first. Default 4096 (about 0.5 ms of exact distances).
	ExactLimit int `yaml:"exact_limit"`
	// Candidates is how many entries, ranked by binary code, get an exact
	// distance in a large gallery. Default 1024: on 50,000 face-like
	// clusters no face of an enrolled person lost its match
	// (TestCodedRecallFaceLike); a stranger's nearest person may be missed,
	// which only makes accepting it less likely.
	Candidates int `yaml:"candidates"`
	// CalibrationSamples caps the samples used to fit the threshold.
	// Default 512.
	CalibrationSamples int `yaml:"calibration_samples"`
	// Logger receives rebuild timings at debug level. Default: discard.
	Logger *slog.Logger `yaml:"-"`
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	var o Options
	o.fill()
	return o
}

// Defaults, measured on LFW (see docs in Calibration and the package doc).
// DefaultMargin and DefaultClusterRadius are DlibSpace's.
const (
	DefaultTargetFAR     = 0.01
	DefaultMargin        = 0.03
	DefaultClusterRadius = 0.42
)

func (o *Options) fill() {
	o.Space = o.Space.orDefault()
	if o.TargetFAR <= 0 || o.TargetFAR >= 1 {
		o.TargetFAR = DefaultTargetFAR
	}
	if o.Margin <= 0 {
		o.Margin = o.Space.Margin
	}
	if o.ClusterRadius <= 0 {
		o.ClusterRadius = o.Space.ClusterRadius
	}
	if o.KNN < 0 {
		o.KNN = 0
	}
	if o.Workers <= 0 {
		o.Workers = min(2, runtime.GOMAXPROCS(0))
	}
	if o.ExactLimit <= 0 {
		o.ExactLimit = 4096
	}
	if o.Candidates <= 0 {
		o.Candidates = 1024
	}
	if o.CalibrationSamples <= 0 {
		o.CalibrationSamples = 512
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}
