package infer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	tf "github.com/wamuir/graft/tensorflow"
)

// Model files, as shipped in @vladmandic/face-api@1.7.15's model/ folder.
const (
	ModelFile    = "face_recognition_model.bin"
	ManifestFile = "face_recognition_model-weights_manifest.json"

	modelSHA256    = "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589"
	manifestSHA256 = "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b"
)

// Param is one named weight tensor, dequantised to float32, row-major in the
// order of Shape (filters are HWIO, directly usable by Conv2D).
type Param struct {
	Name   string
	Shape  []int64
	Values []float32
}

// Weights are the network's parameters, validated against the layout this
// package builds. A Weights is read-only after LoadWeights and can be shared
// by several graphs (an Embedder and a fine-tuning job).
type Weights struct {
	params []Param
	index  map[string]int
}

// manifest is the tfjs weights manifest (one group, one shard here).
type manifest []struct {
	Paths   []string `json:"paths"`
	Weights []struct {
		Name         string  `json:"name"`
		Shape        []int64 `json:"shape"`
		Dtype        string  `json:"dtype"`
		Quantization *struct {
			Dtype string   `json:"dtype"`
			Scale *float64 `json:"scale"`
			Min   *float64 `json:"min"`
		} `json:"quantization"`
	} `json:"weights"`
}

// LoadWeights reads face_recognition_model.bin and its manifest from
// modelDir, checks the manifest describes exactly this network (names,
// shapes, dtypes), the file sizes and both sha256 sums, and dequantises the
// uint8 tensors as tfjs does: q*scale + min in float64, then rounded to
// float32. Every error wraps ErrModelFile and names the file.
func LoadWeights(modelDir string) (*Weights, error) {
	return loadWeights(filepath.Join(modelDir, ManifestFile), filepath.Join(modelDir, ModelFile))
}

func modelErr(path, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrModelFile, path, fmt.Sprintf(format, a...))
}

func loadWeights(manifestPath, binPath string) (*Weights, error) {
	mraw, err := os.ReadFile(manifestPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModelFile, err)
	}
	var m manifest
	dec := json.NewDecoder(bytes.NewReader(mraw))
	if err := dec.Decode(&m); err != nil {
		return nil, modelErr(manifestPath, "not a weights manifest: %v", err)
	}
	if len(m) != 1 || len(m[0].Paths) != 1 {
		return nil, modelErr(manifestPath, "want one weight group with one shard, got %d groups", len(m))
	}
	if got := m[0].Paths[0]; got != filepath.Base(binPath) {
		return nil, modelErr(manifestPath, "shard is %q, want %q", got, filepath.Base(binPath))
	}

	// The manifest must list exactly the tensors the network uses, in order.
	specs := paramSpecs()
	ws := m[0].Weights
	if len(ws) != len(specs) {
		return nil, modelErr(manifestPath, "has %d tensors, the network needs %d", len(ws), len(specs))
	}
	type layout struct {
		offset, count int64
		quantized     bool
		scale, min    float64
	}
	lay := make([]layout, len(ws))
	var size int64
	for i, w := range ws {
		spec := specs[i]
		if w.Name != spec.name {
			return nil, modelErr(manifestPath, "tensor %d is %q, want %q", i, w.Name, spec.name)
		}
		if !slices.Equal(w.Shape, spec.shape) {
			return nil, modelErr(manifestPath, "tensor %q has shape %v, want %v", w.Name, w.Shape, spec.shape)
		}
		if w.Dtype != "float32" {
			return nil, modelErr(manifestPath, "tensor %q has dtype %q, want float32", w.Name, w.Dtype)
		}
		l := layout{offset: size, count: numElements(spec.shape)}
		if q := w.Quantization; q != nil {
			if q.Dtype != "uint8" || q.Scale == nil || q.Min == nil ||
				math.IsNaN(*q.Scale) || math.IsInf(*q.Scale, 0) || math.IsNaN(*q.Min) || math.IsInf(*q.Min, 0) {
				return nil, modelErr(manifestPath, "tensor %q: unsupported quantization (want uint8 with finite scale and min)", w.Name)
			}
			l.quantized, l.scale, l.min = true, *q.Scale, *q.Min
			size += l.count
		} else {
			size += 4 * l.count
		}
		lay[i] = l
	}

	data, err := os.ReadFile(binPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModelFile, err)
	}
	switch {
	case int64(len(data)) < size:
		return nil, modelErr(binPath, "truncated: %d bytes, the manifest needs %d", len(data), size)
	case int64(len(data)) > size:
		return nil, modelErr(binPath, "%d bytes, the manifest needs %d (wrong file?)", len(data), size)
	}
	if sum := sha256.Sum256(mraw); hex.EncodeToString(sum[:]) != manifestSHA256 {
		return nil, modelErr(manifestPath, "checksum mismatch: sha256 %x, want %s", sum, manifestSHA256)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != modelSHA256 {
		return nil, modelErr(binPath, "checksum mismatch: sha256 %x, want %s", sum, modelSHA256)
	}

	w := &Weights{params: make([]Param, len(specs)), index: make(map[string]int, len(specs))}
	for i, l := range lay {
		vals := make([]float32, l.count)
		if l.quantized {
			for j, q := range data[l.offset : l.offset+l.count] {
				// tfjs: values[i] = v * scale + min on JS doubles, stored in a
				// Float32Array. The explicit float64 conversion of the product
				// stops the compiler fusing it into an FMA (one rounding
				// instead of two), which would break bit-exactness.
				vals[j] = float32(float64(float64(q)*l.scale) + l.min)
			}
		} else {
			raw := data[l.offset : l.offset+4*l.count]
			for j := range vals {
				vals[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
			}
		}
		w.params[i] = Param{Name: specs[i].name, Shape: slices.Clone(specs[i].shape), Values: vals}
		w.index[specs[i].name] = i
	}
	return w, nil
}

func numElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// Names returns the parameter names in manifest order, e.g.
// "conv32_down/conv/filters", "conv256_down_out/conv2/scale/biases", "fc".
func (w *Weights) Names() []string {
	names := make([]string, len(w.params))
	for i, p := range w.params {
		names[i] = p.Name
	}
	return names
}

// Param returns the named parameter. Its Values must not be modified.
func (w *Weights) Param(name string) (Param, bool) {
	i, ok := w.index[name]
	if !ok {
		return Param{}, false
	}
	return w.params[i], true
}

// NumValues is the total number of weights (5,614,592 for this network).
func (w *Weights) NumValues() int64 {
	var n int64
	for _, p := range w.params {
		n += int64(len(p.Values))
	}
	return n
}

// Tensor returns the named parameter as a new float32 tensor.
func (w *Weights) Tensor(name string) (*tf.Tensor, error) {
	p, ok := w.Param(name)
	if !ok {
		return nil, fmt.Errorf("%w: no weight tensor %q", ErrInput, name)
	}
	return float32Tensor(p.Shape, p.Values)
}

// float32Tensor copies values into a tensor of the given shape without the
// reflection cost of tf.NewTensor.
func float32Tensor(shape []int64, values []float32) (*tf.Tensor, error) {
	buf := make([]byte, 4*len(values))
	for i, v := range values {
		binary.NativeEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return tf.ReadTensor(tf.Float, shape, bytes.NewReader(buf))
}
