package facefile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestInputs(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"b/2.png", "b/1.jpg", "a.JPG", "b/c/0.jpeg", "notes.txt", "b/z.gif"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), nil, 0o644)
	}
	got, err := Inputs([]string{"x.jpg", dir}, "-", strings.NewReader("y.png\r\n\n  \nz/w.jpg\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"x.jpg", filepath.Join(dir, "a.JPG"), filepath.Join(dir, "b/1.jpg"), filepath.Join(dir, "b/2.png"),
		filepath.Join(dir, "b/c/0.jpeg"), "y.png", "z/w.jpg"}
	if !slices.Equal(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	if _, err := Inputs(nil, filepath.Join(dir, "nope.txt"), nil); err == nil {
		t.Fatal("missing --list file: no error")
	}
}
