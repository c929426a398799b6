package facefile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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

// TestRunOrdered: lines come out in input order whatever order the workers
// finish in, failures are counted, and a cancelled context stops the run.
func TestRunOrdered(t *testing.T) {
	paths := []string{"a", "b", "c", "d", "e", "f", "g"}
	var buf strings.Builder
	process := func(p string) ([]byte, bool) {
		if p == "a" {
			time.Sleep(20 * time.Millisecond) // finishes last
		}
		return []byte("line " + p), p != "c" && p != "f"
	}
	failed, err := RunOrdered(t.Context(), paths, 3, process, &buf, nil)
	want := "line a\nline b\nline c\nline d\nline e\nline f\nline g\n"
	if err != nil || failed != 2 || buf.String() != want {
		t.Fatalf("failed %d, err %v, output\n%s", failed, err, buf.String())
	}

	// Cancelled before the start: the feeder may still hand out a few paths
	// (select picks at random), never all 200.
	many := make([]string, 200)
	for i := range many {
		many[i] = "b"
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	buf.Reset()
	if _, err := RunOrdered(ctx, many, 2, process, &buf, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v (output %q)", err, buf.String())
	}
}
