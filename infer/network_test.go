package infer

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

var testWeights *Weights

func weights(t testing.TB) *Weights {
	t.Helper()
	if testWeights == nil {
		w, err := LoadWeights(modelDir(t))
		if err != nil {
			t.Fatal(err)
		}
		testWeights = w
	}
	return testWeights
}

// TestStagesMatchIntermediates checks every stage's shape, mean and first
// values against face-api's activations for chip_a1 (the per-layer trace of
// the golden test).
func TestStagesMatchIntermediates(t *testing.T) {
	dir := goldenDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "intermediates_chip_a1.json"))
	if err != nil {
		t.Skipf("no intermediates: %v", err)
	}
	var ref struct {
		Stages []struct {
			Name   string    `json:"name"`
			Shape  []int64   `json:"shape"`
			Mean   float64   `json:"mean"`
			First8 []float64 `json:"first8_nhwc"`
		} `json:"stages"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	g, _ := loadGolden(t)
	chip := loadChip(t, filepath.Join(dir, "chip_a1.png"), g.RGBSHA256["chip_a1.png"])

	s := op.NewScope()
	in := op.Placeholder(s, tf.Float, op.PlaceholderShape(tf.MakeShape(-1, InputSize, InputSize, 3)))
	stages, err := BuildStages(s, in, weights(t), nil, StageInput, StageFC)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(stages); got != len(StageNames()) {
		t.Fatalf("%d stages, want %d", got, len(StageNames()))
	}
	graph, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := tf.NewSession(graph, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	px := make([]float32, len(chip.Pix))
	for i, v := range chip.Pix {
		px[i] = float32(v)
	}
	x, err := float32Tensor([]int64{1, InputSize, InputSize, 3}, px)
	if err != nil {
		t.Fatal(err)
	}
	fetch := make([]tf.Output, len(stages))
	for i, st := range stages {
		fetch[i] = st.Output
	}
	out, err := sess.Run(map[tf.Output]*tf.Tensor{in: x}, fetch, nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, st := range stages {
		byName[st.Name] = i
	}
	for _, r := range ref.Stages {
		i, ok := byName[r.Name]
		if !ok {
			t.Errorf("reference stage %q not built", r.Name)
			continue
		}
		got := out[i]
		if !slices.Equal(got.Shape(), r.Shape) {
			t.Errorf("%s: shape %v, want %v", r.Name, got.Shape(), r.Shape)
			continue
		}
		vals := flatFloats(t, got)
		var sum float64
		for _, v := range vals {
			sum += float64(v)
		}
		mean := sum / float64(len(vals))
		if math.Abs(mean-r.Mean) > 1e-5*math.Max(1, math.Abs(r.Mean)) {
			t.Errorf("%s: mean %.8g, want %.8g", r.Name, mean, r.Mean)
		}
		for k, want := range r.First8 {
			if math.Abs(float64(vals[k])-want) > 1e-5 {
				t.Errorf("%s: value %d = %.8g, want %.8g", r.Name, k, vals[k], want)
			}
		}
	}
}

func flatFloats(t testing.TB, x *tf.Tensor) []float32 {
	t.Helper()
	var out []float32
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case []float32:
			out = append(out, v...)
		case [][]float32:
			for _, r := range v {
				walk(r)
			}
		case [][][]float32:
			for _, r := range v {
				walk(r)
			}
		case [][][][]float32:
			for _, r := range v {
				walk(r)
			}
		default:
			t.Fatalf("unexpected tensor value %T", v)
		}
	}
	walk(x.Value())
	return out
}

// TestBuildStagesPartial builds the last stages on their own (what a
// fine-tuning job does) and checks they give the same embedding as the full
// network fed the same intermediate activation.
func TestBuildStagesPartial(t *testing.T) {
	w := weights(t)
	s := op.NewScope()
	img := op.Placeholder(s, tf.Float, op.PlaceholderShape(tf.MakeShape(-1, InputSize, InputSize, 3)))
	full, err := BuildStages(s, img, w, nil, StageInput, StageFC)
	if err != nil {
		t.Fatal(err)
	}
	feat := op.Placeholder(s.SubScope("feat"), tf.Float, op.PlaceholderShape(tf.MakeShape(-1, 4, 4, 256)))
	var seen []string
	params := func(name string, v *tf.Tensor) tf.Output {
		seen = append(seen, name)
		return op.Const(s.SubScope("p"), v)
	}
	tail, err := BuildStages(s, feat, w, params, "conv256_down_out", StageFC)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"conv256_down_out", StageGlobalAvg, StageFC}; len(tail) != 3 || tail[0].Name != want[0] || tail[2].Name != want[2] {
		t.Fatalf("stages %v, want %v", tail, want)
	}
	if len(seen) != 9 || seen[8] != "fc" {
		t.Fatalf("params asked for: %v", seen)
	}
	g, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := tf.NewSession(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	px := make([]float32, 2*InputSize*InputSize*3)
	for i := range px {
		px[i] = float32((i * 7919) % 256)
	}
	x, _ := float32Tensor([]int64{2, InputSize, InputSize, 3}, px)
	conv256 := full[len(full)-4] // conv256_2
	if conv256.Name != "conv256_2" {
		t.Fatalf("stage before the tail is %q", conv256.Name)
	}
	res, err := sess.Run(map[tf.Output]*tf.Tensor{img: x}, []tf.Output{conv256.Output, full[len(full)-1].Output}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res2, err := sess.Run(map[tf.Output]*tf.Tensor{feat: res[0]}, []tf.Output{tail[2].Output}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := flatFloats(t, res[1]), flatFloats(t, res2[0])
	if !slices.Equal(a, b) {
		t.Fatal("tail built on its own differs from the full network")
	}
}

func TestBuildStagesBadInput(t *testing.T) {
	w := weights(t)
	tests := []struct {
		name     string
		shape    tf.Shape
		dtype    tf.DataType
		from, to string
	}{
		{"wrong size", tf.MakeShape(-1, 160, 160, 3), tf.Float, StageInput, StageFC},
		{"grey", tf.MakeShape(-1, 150, 150, 1), tf.Float, StageInput, StageFC},
		{"uint8", tf.MakeShape(-1, 150, 150, 3), tf.Uint8, StageInput, StageFC},
		{"rank 3", tf.MakeShape(150, 150, 3), tf.Float, StageInput, StageFC},
		{"unknown stage", tf.MakeShape(-1, 150, 150, 3), tf.Float, "conv512", StageFC},
		{"reversed", tf.MakeShape(-1, 150, 150, 3), tf.Float, StageFC, StageInput},
		{"tail from image", tf.MakeShape(-1, 150, 150, 3), tf.Float, "conv256_down_out", StageFC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := op.NewScope()
			in := op.Placeholder(s, tt.dtype, op.PlaceholderShape(tt.shape))
			_, err := BuildStages(s, in, w, nil, tt.from, tt.to)
			if !errors.Is(err, ErrInput) {
				t.Fatalf("err = %v, want ErrInput", err)
			}
		})
	}
	if _, err := BuildBackbone(op.NewScope(), tf.Output{}, nil, nil); !errors.Is(err, ErrInput) {
		t.Fatalf("nil weights: err = %v", err)
	}
}

func TestCountFLOPs(t *testing.T) {
	s := op.NewScope()
	in := op.Placeholder(s, tf.Float, op.PlaceholderShape(tf.MakeShape(-1, InputSize, InputSize, 3)))
	if _, err := BuildBackbone(s, in, weights(t), nil); err != nil {
		t.Fatal(err)
	}
	g, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	// Independent count from the layer table in architecture.md.
	conv := func(h, k, cin, cout int64) int64 { return 2 * h * h * cout * k * k * cin }
	want := conv(72, 7, 3, 32) +
		3*2*conv(35, 3, 32, 32) +
		conv(17, 3, 32, 64) + conv(17, 3, 64, 64) + 3*2*conv(17, 3, 64, 64) +
		conv(8, 3, 64, 128) + conv(8, 3, 128, 128) + 2*2*conv(8, 3, 128, 128) +
		conv(3, 3, 128, 256) + conv(3, 3, 256, 256) + 2*2*conv(4, 3, 256, 256) +
		conv(1, 3, 256, 256) + conv(1, 3, 256, 256) +
		2*256*128
	if got := CountFLOPs(g); got != want {
		t.Fatalf("CountFLOPs = %d, want %d", got, want)
	}
	t.Logf("%.3f GFLOP per face", float64(want)/1e9)
}

func TestVariablesMatchConstants(t *testing.T) {
	w := weights(t)
	s := op.NewScope()
	in := op.Placeholder(s, tf.Float, op.PlaceholderShape(tf.MakeShape(-1, InputSize, InputSize, 3)))
	withConst, err := BuildBackbone(s.SubScope("const"), in, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	vars := NewVariables(s.SubScope("vars"))
	withVars, err := BuildBackbone(s.SubScope("var"), in, w, vars.Param)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(vars.Names()); got != 117 {
		t.Fatalf("%d variables, want 117", got)
	}
	if _, ok := vars.Handle("conv256_down_out/conv2/conv/filters"); !ok {
		t.Fatal("no handle for conv256_down_out/conv2/conv/filters")
	}
	g, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := tf.NewSession(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := vars.Init(sess); err != nil {
		t.Fatal(err)
	}
	px := make([]float32, InputSize*InputSize*3)
	for i := range px {
		px[i] = float32((i * 13) % 256)
	}
	x, _ := float32Tensor([]int64{1, InputSize, InputSize, 3}, px)
	res, err := sess.Run(map[tf.Output]*tf.Tensor{in: x}, []tf.Output{withConst, withVars}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := flatFloats(t, res[0]), flatFloats(t, res[1])
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-6 {
			t.Fatalf("value %d: const %g, variables %g", i, a[i], b[i])
		}
	}
}
