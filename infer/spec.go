package infer

// The network's layout, as data: the builder (network.go) and the weight
// validation (weights.go) both read it, so they cannot disagree.
//
// Reference: /work/shared/golden/architecture.md (face-api's port of dlib's
// ResNet-29 "dlib_face_recognition_resnet_model_v1").

// Network constants.
const (
	// InputSize is the side of the square RGB input (a face.Chip).
	InputSize = 150
	// EmbeddingSize is the length of the network's output vector.
	EmbeddingSize = 128
	// FeatureSize is the width of the pooled feature before the FC layer.
	FeatureSize = 256
)

// inputMean is face-api's per-channel (R, G, B) mean; the network computes
// (pixel - mean) / 255 in float32 (dlib itself divides by 256).
var inputMean = [3]float32{122.782, 117.001, 104.298}

type blockKind int

const (
	stemBlock     blockKind = iota // 7x7 stride-2 conv layer (+ max pool after it)
	residualBlock                  // identity residual block
	downBlock                      // downsampling residual block
)

type blockSpec struct {
	name      string
	kind      blockKind
	cin, cout int64
}

// blocks lists the network's blocks in order (and in manifest order).
var blocks = []blockSpec{
	{"conv32_down", stemBlock, 3, 32},
	{"conv32_1", residualBlock, 32, 32},
	{"conv32_2", residualBlock, 32, 32},
	{"conv32_3", residualBlock, 32, 32},
	{"conv64_down", downBlock, 32, 64},
	{"conv64_1", residualBlock, 64, 64},
	{"conv64_2", residualBlock, 64, 64},
	{"conv64_3", residualBlock, 64, 64},
	{"conv128_down", downBlock, 64, 128},
	{"conv128_1", residualBlock, 128, 128},
	{"conv128_2", residualBlock, 128, 128},
	{"conv256_down", downBlock, 128, 256},
	{"conv256_1", residualBlock, 256, 256},
	{"conv256_2", residualBlock, 256, 256},
	{"conv256_down_out", downBlock, 256, 256},
}

// Names of the stages that are not blocks.
const (
	StageInput     = "input_normalized"
	StageMaxPool   = "maxpool"
	StageGlobalAvg = "global_avg"
	StageFC        = "fc"
)

// StageNames returns the names of the network's stages in order, as they
// appear in Network.Stages and intermediates_chip_a1.json: input_normalized,
// conv32_down, maxpool, conv32_1 ... conv256_down_out, global_avg, fc.
func StageNames() []string {
	names := []string{StageInput, blocks[0].name, StageMaxPool}
	for _, b := range blocks[1:] {
		names = append(names, b.name)
	}
	return append(names, StageGlobalAvg, StageFC)
}

// paramSpec is one weight tensor the network needs.
type paramSpec struct {
	name  string
	shape []int64
}

// convLayerParams are the four tensors of one conv layer (conv + scale).
func convLayerParams(prefix string, k, cin, cout int64) []paramSpec {
	return []paramSpec{
		{prefix + "/conv/filters", []int64{k, k, cin, cout}},
		{prefix + "/conv/bias", []int64{cout}},
		{prefix + "/scale/weights", []int64{cout}},
		{prefix + "/scale/biases", []int64{cout}},
	}
}

// paramSpecs returns every weight tensor in manifest order.
func paramSpecs() []paramSpec {
	var ps []paramSpec
	for _, b := range blocks {
		switch b.kind {
		case stemBlock:
			ps = append(ps, convLayerParams(b.name, 7, b.cin, b.cout)...)
		default:
			ps = append(ps, convLayerParams(b.name+"/conv1", 3, b.cin, b.cout)...)
			ps = append(ps, convLayerParams(b.name+"/conv2", 3, b.cout, b.cout)...)
		}
	}
	return append(ps, paramSpec{"fc", []int64{FeatureSize, EmbeddingSize}})
}
