package infer

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadWeights(t *testing.T) {
	w := weights(t)
	if got := len(w.Names()); got != 117 {
		t.Fatalf("%d tensors, want 117", got)
	}
	if got := w.NumValues(); got != 5614592 {
		t.Fatalf("%d values, want 5614592", got)
	}
	fc, ok := w.Param("fc")
	if !ok || len(fc.Values) != 256*128 || fc.Shape[0] != 256 || fc.Shape[1] != 128 {
		t.Fatalf("fc = %v %d", fc.Shape, len(fc.Values))
	}
	// An unquantised tensor is raw float32; a quantised one is q*scale+min
	// with q in 0..255, so its values lie on that grid.
	if _, ok := w.Param("conv64_down/conv1/conv/filters"); !ok {
		t.Fatal("conv64_down/conv1/conv/filters missing")
	}
	const scale, min = 0.000357687911566566, -0.04578405268052045 // fc's manifest entry
	for i, v := range fc.Values {
		q := math.Round((float64(v) - min) / scale)
		if q < 0 || q > 255 || float32(float64(q*scale)+min) != v {
			t.Fatalf("fc[%d] = %v is not on the uint8 grid", i, v)
		}
	}
	if _, err := w.Tensor("nope"); !errors.Is(err, ErrInput) {
		t.Fatalf("Tensor(nope): %v", err)
	}
}

// copyModel copies the model files into a temporary directory, applying
// edit to the named file's bytes.
func copyModel(t *testing.T, file string, edit func([]byte) []byte) string {
	t.Helper()
	src := modelDir(t)
	dst := t.TempDir()
	for _, f := range []string{ModelFile, ManifestFile} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == file {
			if edit == nil {
				continue // leave the file out
			}
			b = edit(b)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestLoadWeightsBadFiles(t *testing.T) {
	replace := func(old, new string) func([]byte) []byte {
		return func(b []byte) []byte {
			if !bytes.Contains(b, []byte(old)) {
				t.Fatalf("manifest has no %q", old)
			}
			return bytes.Replace(b, []byte(old), []byte(new), 1)
		}
	}
	tests := []struct {
		name string
		file string
		edit func([]byte) []byte // nil: file missing
		want string              // in the message, besides the file name
	}{
		{"missing weights", ModelFile, nil, "no such file"},
		{"missing manifest", ManifestFile, nil, "no such file"},
		{"truncated weights", ModelFile, func(b []byte) []byte { return b[:len(b)/2] }, "truncated"},
		{"weights too long", ModelFile, func(b []byte) []byte { return append(b, 0) }, "6444033 bytes"},
		{"corrupt weights", ModelFile, func(b []byte) []byte { b[1000] ^= 1; return b }, "checksum mismatch"},
		{"empty manifest", ManifestFile, func([]byte) []byte { return nil }, "not a weights manifest"},
		{"manifest not json", ManifestFile, func([]byte) []byte { return []byte("<html>") }, "not a weights manifest"},
		{"wrong shape", ManifestFile, replace(`[7,7,3,32]`, `[7,7,3,16]`), "shape [7 7 3 16], want [7 7 3 32]"},
		{"renamed tensor", ManifestFile, replace(`"fc"`, `"fc2"`), `"fc2", want "fc"`},
		{"bad quantization", ManifestFile, replace(`"uint8"`, `"uint16"`), "unsupported quantization"},
		{"wrong shard", ManifestFile, replace(`"face_recognition_model.bin"`, `"other.bin"`), "other.bin"},
		{"manifest edited", ManifestFile, replace(`"float32"`, ` "float32"`), "checksum mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyModel(t, tt.file, tt.edit)
			_, err := LoadWeights(dir)
			if !errors.Is(err, ErrModelFile) {
				t.Fatalf("err = %v, want ErrModelFile", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.file) || !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q should name %s and say %q", msg, tt.file, tt.want)
			}
			if tt.edit == nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("missing file: err = %v, want fs.ErrNotExist", err)
			}
		})
	}
}
