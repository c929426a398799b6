package detect

import (
	"fmt"
	"log/slog"

	"github.com/edged-dev/edged/face"
)

// Backends.
const (
	BackendDNN  = "dnn"  // Ultra-Light RFB-320 ONNX via OpenCV DNN (default)
	BackendHaar = "haar" // OpenCV Haar cascade (Debian opencv-data), no download
)

// Default model files and their sha256 (pinned in scripts/setup-files.sh).
const (
	DefaultDetectorModel  = "fr_detect.onnx"
	DefaultLandmarkModel  = "fr_landmark.onnx"
	DefaultHaarCascade    = "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"
	detectorModelSHA256   = "6c0256ccd3164f844736a401faf936ec2930764a87ae39442180887d0c5c8854"
	landmarkModelSHA256   = "f10b0ba1d2a8a099adefede1ebf3733e44fe370715e7303dbeb7f59c02142258"
	defaultScoreThreshold = 0.7
	defaultNMSThreshold   = 0.3
	defaultMinFace        = 20
)

// Options configures a Detector. The zero value of a field means its default
// (see DefaultOptions), except where noted.
type Options struct {
	// ModelDir holds the model files named below.
	ModelDir string `yaml:"model_dir"`
	// Backend is "dnn" (default) or "haar".
	Backend string `yaml:"backend"`

	// DetectorModel is the ONNX detector file, relative to ModelDir unless
	// absolute. Default fr_detect.onnx. Its outputs must be named "scores"
	// (N x 2, softmax) and "boxes" (N x 4, x1 y1 x2 y2 in 0..1), input
	// 1x3x240x320.
	DetectorModel string `yaml:"detector_model"`
	// DetectorSHA256 is checked when set; DefaultOptions sets the pinned sum
	// of fr_detect.onnx.
	DetectorSHA256 string `yaml:"detector_sha256"`
	// LandmarkModel is the 68-point ONNX file (input 1x1x64x64), relative to
	// ModelDir unless absolute. Default fr_landmark.onnx.
	LandmarkModel string `yaml:"landmark_model"`
	// LandmarkSHA256 is checked when set (pinned sum by default).
	LandmarkSHA256 string `yaml:"landmark_sha256"`
	// HaarCascade is the cascade XML for the haar backend.
	// Default /usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml.
	HaarCascade string `yaml:"haar_cascade"`

	// ScoreThreshold is the minimum detector score (dnn). Default 0.7.
	ScoreThreshold float32 `yaml:"score_threshold"`
	// NMSThreshold is the IoU above which the lower-scored of two boxes is
	// dropped. Default 0.3.
	NMSThreshold float32 `yaml:"nms_threshold"`
	// MinFace and MaxFace bound the face size, sqrt(w*h) of the box in frame
	// pixels. Defaults 20 and 0 (no upper bound).
	MinFace int `yaml:"min_face"`
	MaxFace int `yaml:"max_face"`
	// MaxFaces keeps only the highest-scored faces; 0 keeps all.
	MaxFaces int `yaml:"max_faces"`
	// Template is the alignment of Face.Chip: the embedding backbone's
	// (infer.Backbone.Template). Default face.DlibTemplate. Face.Crop is
	// always aligned to face.CropTemplate.
	Template face.Template `yaml:"-"`
	// Landmarks enables the landmark model and aligned chips. DefaultOptions
	// sets it to true; with false, chips are centre crops (Aligned=false).
	Landmarks bool `yaml:"landmarks"`

	// HaarScale and HaarNeighbors tune the cascade (defaults 1.1 and 5).
	HaarScale     float64 `yaml:"haar_scale"`
	HaarNeighbors int     `yaml:"haar_neighbors"`

	// Workers is the number of network sets in the pool, i.e. how many
	// Detect calls run at once. Default 1.
	Workers int `yaml:"workers"`

	// Quality thresholds: a face beyond one of them gets an Issue.
	// Defaults: 60 px; blur 15 (variance of the Laplacian of the grey chip:
	// LFW's clean images have a median of 46 and 3% below 15, the same
	// images blurred with a 1.5-px Gaussian a median of 9); |yaw| 0.6
	// (about 30 degrees; LFW: 5% above).
	MinQualitySize float32 `yaml:"min_quality_size"`
	MinQualityBlur float32 `yaml:"min_quality_blur"`
	MaxQualityYaw  float32 `yaml:"max_quality_yaw"`

	Logger *slog.Logger `yaml:"-"`
}

// DefaultOptions returns the defaults with the given model directory.
func DefaultOptions(modelDir string) Options {
	o := Options{ModelDir: modelDir, Landmarks: true}
	o.fill()
	return o
}

// fill sets the defaults of zero fields (Landmarks is left as is).
func (o *Options) fill() {
	if o.Backend == "" {
		o.Backend = BackendDNN
	}
	if o.Template.Size == 0 {
		o.Template = face.DlibTemplate
	}
	if o.DetectorModel == "" {
		o.DetectorModel = DefaultDetectorModel
		if o.DetectorSHA256 == "" {
			o.DetectorSHA256 = detectorModelSHA256
		}
	}
	if o.LandmarkModel == "" {
		o.LandmarkModel = DefaultLandmarkModel
		if o.LandmarkSHA256 == "" {
			o.LandmarkSHA256 = landmarkModelSHA256
		}
	}
	if o.HaarCascade == "" {
		o.HaarCascade = DefaultHaarCascade
	}
	if o.ScoreThreshold == 0 {
		o.ScoreThreshold = defaultScoreThreshold
	}
	if o.NMSThreshold == 0 {
		o.NMSThreshold = defaultNMSThreshold
	}
	if o.MinFace == 0 {
		o.MinFace = defaultMinFace
	}
	if o.HaarScale == 0 {
		o.HaarScale = 1.1
	}
	if o.HaarNeighbors == 0 {
		o.HaarNeighbors = 5
	}
	if o.Workers == 0 {
		o.Workers = 1
	}
	if o.MinQualitySize == 0 {
		o.MinQualitySize = 60
	}
	if o.MinQualityBlur == 0 {
		o.MinQualityBlur = 15
	}
	if o.MaxQualityYaw == 0 {
		o.MaxQualityYaw = 0.6
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (o *Options) validate() error {
	switch {
	case o.Backend != BackendDNN && o.Backend != BackendHaar:
		return fmt.Errorf("%w: backend %q (want %q or %q)", ErrOptions, o.Backend, BackendDNN, BackendHaar)
	case o.ScoreThreshold < 0 || o.ScoreThreshold > 1:
		return fmt.Errorf("%w: score threshold %v not in [0,1]", ErrOptions, o.ScoreThreshold)
	case o.NMSThreshold < 0 || o.NMSThreshold > 1:
		return fmt.Errorf("%w: nms threshold %v not in [0,1]", ErrOptions, o.NMSThreshold)
	case o.MinFace < 0 || o.MaxFace < 0 || (o.MaxFace > 0 && o.MaxFace < o.MinFace):
		return fmt.Errorf("%w: face size bounds [%d,%d]", ErrOptions, o.MinFace, o.MaxFace)
	case o.MaxFaces < 0:
		return fmt.Errorf("%w: max faces %d", ErrOptions, o.MaxFaces)
	case o.HaarScale <= 1 || o.HaarNeighbors < 0:
		return fmt.Errorf("%w: haar scale %v (must be > 1), neighbours %d", ErrOptions, o.HaarScale, o.HaarNeighbors)
	case o.Workers < 1 || o.Workers > 64:
		return fmt.Errorf("%w: workers %d not in [1,64]", ErrOptions, o.Workers)
	}
	return nil
}
