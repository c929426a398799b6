package detect

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestNewRejectsBadModels feeds New broken model files; each must be refused
// with ErrModel before OpenCV sees it (OpenCV would abort the test binary).
func TestNewRejectsBadModels(t *testing.T) {
	dir := modelDir(t)
	good, err := os.ReadFile(filepath.Join(dir, DefaultDetectorModel))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := append([]byte(nil), good...)
	for i := len(flipped) / 3; i < len(flipped)/3+64; i++ {
		flipped[i] ^= 0xA5
	}
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(i*7 + 3)
	}
	cases := []struct {
		name string
		path string
		sha  string // "" = structural checks only
	}{
		{"missing file", filepath.Join(tmp, "nope.onnx"), ""},
		{"empty file", write("empty.onnx", nil), ""},
		{"text file", write("text.onnx", []byte("this is not a model, just some text\n")), ""},
		{"truncated (checksum)", write("trunc1.onnx", good[:len(good)/2]), detectorModelSHA256},
		{"truncated (structure)", write("trunc2.onnx", good[:len(good)/2]), ""},
		{"truncated by 100 bytes (structure)", write("trunc3.onnx", good[:len(good)-100]), ""},
		{"bytes flipped (checksum)", write("flip.onnx", flipped), detectorModelSHA256},
		{"garbage", write("garbage.onnx", garbage), ""},
		{"directory", tmp, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions(dir)
			o.DetectorModel, o.DetectorSHA256 = tc.path, tc.sha
			d, err := New(o)
			if err == nil {
				d.Close()
				t.Fatal("New accepted a bad model")
			}
			if !errors.Is(err, ErrModel) {
				t.Fatalf("err = %v, want ErrModel", err)
			}
			t.Log(err)
		})
	}
	t.Run("bad landmark model", func(t *testing.T) {
		o := DefaultOptions(dir)
		o.LandmarkModel, o.LandmarkSHA256 = write("lm.onnx", good[:len(good)-7]), ""
		if _, err := New(o); !errors.Is(err, ErrModel) {
			t.Fatalf("err = %v, want ErrModel", err)
		}
	})
	t.Run("bad haar cascade", func(t *testing.T) {
		o := DefaultOptions(dir)
		o.Backend = BackendHaar
		cascade, err := os.ReadFile(DefaultHaarCascade)
		if err != nil {
			t.Skip(err)
		}
		o.HaarCascade = write("cascade.xml", cascade[:len(cascade)/2])
		if _, err := New(o); !errors.Is(err, ErrModel) {
			t.Fatalf("err = %v, want ErrModel", err)
		}
	})
}

func TestCheckONNXAcceptsPinnedModels(t *testing.T) {
	dir := modelDir(t)
	for _, name := range []string{DefaultDetectorModel, DefaultLandmarkModel} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkONNX(data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	cases := map[string]func(*Options){
		"backend":      func(o *Options) { o.Backend = "yolo" },
		"score":        func(o *Options) { o.ScoreThreshold = 1.5 },
		"nms":          func(o *Options) { o.NMSThreshold = -0.1 },
		"sizes":        func(o *Options) { o.MinFace, o.MaxFace = 100, 50 },
		"workers":      func(o *Options) { o.Workers = -1 },
		"haar scale":   func(o *Options) { o.HaarScale = 0.9 },
		"negative max": func(o *Options) { o.MaxFaces = -2 },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			o := DefaultOptions("/nonexistent")
			mod(&o)
			if _, err := New(o); !errors.Is(err, ErrOptions) {
				t.Fatalf("err = %v, want ErrOptions", err)
			}
		})
	}
}

// FuzzCheckONNX: the structural check never panics on any input.
func FuzzCheckONNX(f *testing.F) {
	f.Add([]byte{0x08, 0x07, 0x3a, 0x02, 0x0a, 0x00})
	f.Add([]byte("not a model"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = checkONNX(data)
	})
}
