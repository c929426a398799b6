package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edged-dev/edged/internal/facefile"
)

// embedTestShared is ../shared next to the checkout (golden files, LFW dev).
var embedTestShared = filepath.Join("..", "..", "..", "shared")

func embedTestNeeds(t *testing.T, paths ...string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(defaultModelDir(), "face_recognition_model.bin")); err != nil {
		t.Skipf("models not installed (make setup): %v", err)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("test data not available: %v", err)
		}
	}
}

type embedTestGolden struct {
	Vectors map[string][]float64 `json:"vectors"`
}

func embedTestLoadGolden(t *testing.T) (string, embedTestGolden, []string) {
	t.Helper()
	dir := filepath.Join(embedTestShared, "golden")
	embedTestNeeds(t, filepath.Join(dir, "embeddings.json"))
	raw, err := os.ReadFile(filepath.Join(dir, "embeddings.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g embedTestGolden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	chips, _ := filepath.Glob(filepath.Join(dir, "chip_*.png"))
	if len(chips) != len(g.Vectors) {
		t.Fatalf("%d chips, %d golden vectors", len(chips), len(g.Vectors))
	}
	return dir, g, chips
}

// embedTestCheckGolden parses `edged embed --chip` output and compares it
// with the golden vectors; it returns the max abs difference.
func embedTestCheckGolden(t *testing.T, out string, g embedTestGolden, files []string) float64 {
	t.Helper()
	var maxDiff float64
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	i := 0
	for sc.Scan() {
		var line map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %d not JSON: %v", i+1, err)
		}
		if len(line) != 2 {
			t.Fatalf("line %d has keys %v, want file and embedding", i+1, slices.Collect(mapsKeys(line)))
		}
		var file string
		var emb []float64
		json.Unmarshal(line["file"], &file)
		json.Unmarshal(line["embedding"], &emb)
		if i >= len(files) || file != files[i] {
			t.Fatalf("line %d is for %q, want %q (paths as given, input order)", i+1, file, files[min(i, len(files)-1)])
		}
		want := g.Vectors[filepath.Base(file)]
		if len(emb) != 128 || len(want) != 128 {
			t.Fatalf("%s: %d values (golden %d), want 128", file, len(emb), len(want))
		}
		for k := range want {
			maxDiff = math.Max(maxDiff, math.Abs(emb[k]-want[k]))
		}
		i++
	}
	if i != len(files) {
		t.Fatalf("%d lines for %d files", i, len(files))
	}
	return maxDiff
}

func mapsKeys(m map[string]json.RawMessage) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestEmbedChipGolden(t *testing.T) {
	_, g, chips := embedTestLoadGolden(t)
	var code int
	var err error
	out := captureStdout(t, func() { code, err = runEmbed(t.Context(), append([]string{"--chip", "--backbone", "dlib"}, chips...)) })
	if code != exitOK || err != nil {
		t.Fatalf("exit %d, err %v", code, err)
	}
	d := embedTestCheckGolden(t, out, g, chips)
	t.Logf("max abs diff against face-api: %.3g", d)
	if d > 1e-5 {
		t.Fatalf("max abs diff %.3g > 1e-5", d)
	}
}

// TestEmbedBinaryGolden runs the built binary (EDGED_BIN, set by `make
// test`; or bin/edged) as a user would, from the checkout's root, and also
// checks TensorFlow's start-up lines stay off stderr.
func TestEmbedBinaryGolden(t *testing.T) {
	bin := os.Getenv("EDGED_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin", "edged")
	}
	bin, _ = filepath.Abs(bin)
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no built binary (go build -o bin/edged ./cmd/edged, or set EDGED_BIN): %v", err)
	}
	_, g, _ := embedTestLoadGolden(t)
	root := filepath.Join("..", "..")
	// The paths as a user at the root types them: ../shared/golden/chip_*.png.
	found, _ := filepath.Glob(filepath.Join(root, "..", "shared", "golden", "chip_*.png"))
	var chips []string
	for _, c := range found {
		rel, _ := filepath.Rel(root, c)
		chips = append(chips, rel)
	}
	if len(chips) == 0 {
		t.Fatal("no chips found")
	}
	cmd := exec.Command(bin, append([]string{"embed", "--chip", "--backbone", "dlib"}, chips...)...)
	cmd.Dir = root
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "TF_CPP_MIN_LOG_LEVEL=") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr not empty (TensorFlow log lines?):\n%s", stderr.String())
	}
	d := embedTestCheckGolden(t, stdout.String(), g, chips)
	t.Logf("bin/edged embed --chip: max abs diff %.3g", d)
	if d > 1e-5 {
		t.Fatalf("max abs diff %.3g > 1e-5", d)
	}
}

func TestEmbedImages(t *testing.T) {
	lfw := filepath.Join(embedTestShared, "data", "lfw-dev", "images")
	embedTestNeeds(t, filepath.Join(lfw, "Abel_Pacheco"))
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jpg")
	os.WriteFile(bad, []byte("not a jpeg"), 0o644)
	person := filepath.Join(lfw, "Abel_Pacheco")
	one := filepath.Join(lfw, "Akhmed_Zakayev", "Akhmed_Zakayev_0001.jpg")
	missing := filepath.Join(dir, "missing.jpg")
	list := filepath.Join(dir, "list.txt")
	os.WriteFile(list, []byte(one+"\r\n\n"+missing+"\n"), 0o644)

	for _, crop := range []string{facefile.CropAligned, facefile.CropCenter} {
		t.Run(crop, func(t *testing.T) {
			var code int
			var err error
			args := []string{"--crop", crop, "--workers", "2", "--list", list, bad, person}
			out := captureStdout(t, func() { code, err = runEmbed(t.Context(), args) })
			if code != exitFailure || err == nil || !strings.Contains(err.Error(), "2 of 7 files failed") {
				t.Fatalf("exit %d, err %v: want exitFailure, 2 of 7 files failed", code, err)
			}
			want := []string{bad, filepath.Join(person, "Abel_Pacheco_0001.jpg"), filepath.Join(person, "Abel_Pacheco_0002.jpg"),
				filepath.Join(person, "Abel_Pacheco_0003.jpg"), filepath.Join(person, "Abel_Pacheco_0004.jpg"), one, missing}
			var files []string
			sc := bufio.NewScanner(strings.NewReader(out))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var line struct {
					File  string
					Error string
					Note  string
					Faces *[]embedFaceJSON
				}
				if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
					t.Fatal(err)
				}
				files = append(files, line.File)
				isBad := line.File == bad || line.File == missing
				if isBad != (line.Error != "") || isBad != (line.Faces == nil) {
					t.Errorf("%s: error %q, faces %v", line.File, line.Error, line.Faces)
					continue
				}
				if isBad {
					continue
				}
				if len(*line.Faces) == 0 {
					t.Errorf("%s: no face", line.File)
					continue
				}
				f := (*line.Faces)[0]
				if len(f.Embedding) != 192 { // the default backbone, mobilefacenet
					t.Errorf("%s: embedding of %d values", line.File, len(f.Embedding))
				}
				if crop == facefile.CropAligned && (!f.Aligned || len(f.Landmarks) != 5 || f.Score < 0.7 || line.Note != "" || f.Quality <= 0 || f.Quality != f.Detail.Score) {
					t.Errorf("%s: aligned=%v landmarks=%d score=%v note=%q", line.File, f.Aligned, len(f.Landmarks), f.Score, line.Note)
				}
				if crop == facefile.CropCenter && (f.Aligned || f.Box != [4]int{55, 55, 140, 140} || line.Note == "") {
					t.Errorf("%s: centre crop: aligned=%v box=%v note=%q", line.File, f.Aligned, f.Box, line.Note)
				}
			}
			if !slices.Equal(files, want) {
				t.Fatalf("files in output:\n%v\nwant\n%v", files, want)
			}
		})
	}
}

func TestEmbedUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--crop", "square", "x.jpg"}, {"--workers", "0", "x.jpg"}, {"--bogus"}} {
		code, err := runEmbed(t.Context(), args)
		if code != exitUsage || err == nil {
			t.Errorf("%v: exit %d, err %v; want usage error", args, code, err)
		}
	}
	code, err := runEmbed(t.Context(), []string{"--models", t.TempDir(), "--chip", "x.png"})
	if code != exitStartup || err == nil || !strings.Contains(err.Error(), "MobileFaceNet.tflite") {
		t.Errorf("empty model dir: exit %d, err %v; want exitStartup naming the model file", code, err)
	}
	code, err = runEmbed(t.Context(), []string{"--models", t.TempDir(), "--backbone", "dlib", "--chip", "x.png"})
	if code != exitStartup || err == nil || !strings.Contains(err.Error(), "face_recognition_model") {
		t.Errorf("empty model dir, dlib: exit %d, err %v; want exitStartup naming the model file", code, err)
	}
	if code, err := runEmbed(t.Context(), []string{"--backbone", "resnet", "--chip", "x.png"}); code != exitUsage || err == nil || !strings.Contains(err.Error(), "mobilefacenet") {
		t.Errorf("unknown backbone: exit %d, err %v; want a usage error listing the backbones", code, err)
	}
}

// TestEmbedChipGoldenMobileFaceNet: `edged embed --chip --backbone
// mobilefacenet` reproduces LiteRT's outputs for the golden 112x112 chips
// (L2-normalised, 1e-5), in input order, batched; a chip of another size
// gets its own error line and the others are still embedded.
func TestEmbedChipGoldenMobileFaceNet(t *testing.T) {
	dir := filepath.Join(embedTestShared, "golden", "mobilefacenet")
	embedTestNeeds(t, filepath.Join(dir, "embeddings.json"))
	raw, err := os.ReadFile(filepath.Join(dir, "embeddings.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Chips map[string]struct {
			Embedding []float64 `json:"embedding"`
		} `json:"chips"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	chips, _ := filepath.Glob(filepath.Join(dir, "mfn_*.png"))
	if len(chips) != len(g.Chips) {
		t.Fatalf("%d chips, %d golden vectors", len(chips), len(g.Chips))
	}
	wrong := filepath.Join(embedTestShared, "golden", "chip_a1.png") // a 150x150 dlib chip
	args := append([]string{"--chip", "--backbone", "mobilefacenet"}, chips[:2]...)
	args = append(append(args, wrong), chips[2:]...)
	var code int
	out := captureStdout(t, func() { code, err = runEmbed(t.Context(), args) })
	if code != exitFailure || err == nil {
		t.Errorf("one wrong-size chip: exit %d, err %v; want exitFailure", code, err)
	}
	unit := func(v []float64) []float64 {
		var n float64
		for _, x := range v {
			n += x * x
		}
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = x / math.Sqrt(n)
		}
		return out
	}
	var worst float64
	var order []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l struct {
			File      string    `json:"file"`
			Embedding []float64 `json:"embedding"`
			Error     string    `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		order = append(order, l.File)
		if l.File == wrong {
			if !strings.Contains(l.Error, "112x112") {
				t.Errorf("wrong-size chip: error %q, want one naming 112x112", l.Error)
			}
			continue
		}
		want := unit(g.Chips[strings.TrimSuffix(filepath.Base(l.File), ".png")].Embedding)
		got := unit(l.Embedding)
		if len(got) != 192 || len(want) != 192 {
			t.Fatalf("%s: %d values", l.File, len(got))
		}
		for k := range want {
			worst = math.Max(worst, math.Abs(got[k]-want[k]))
		}
	}
	if want := append(append(append([]string{}, chips[:2]...), wrong), chips[2:]...); !slices.Equal(order, want) {
		t.Errorf("output order %v, want %v", order, want)
	}
	t.Logf("max abs diff of normalised embeddings against LiteRT: %.3g", worst)
	if worst > 1e-5 {
		t.Fatalf("max abs diff %.3g > 1e-5", worst)
	}
}
