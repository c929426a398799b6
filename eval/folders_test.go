package eval

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// writeTree creates the files (paths relative to dir, "/" separated); a
// path ending in "/" is a folder.
func writeTree(t *testing.T, dir string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if p[len(p)-1] == '/' {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScanFolders(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir,
		"bob/2.jpg", "bob/10.PNG", "bob/1.jpeg", "bob/notes.txt", "bob/album.jpg/", // a folder named like an image
		"alice/a.png",
		".hidden/x.jpg",
		"nobody/", "empty/readme.md",
		"top.jpg", // not in a person folder
	)
	got, err := ScanFolders(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, im := range got {
		r, _ := filepath.Rel(dir, im.Path)
		rel = append(rel, im.Person+":"+filepath.ToSlash(r))
	}
	want := []string{"alice:alice/a.png", "bob:bob/1.jpeg", "bob:bob/10.PNG", "bob:bob/2.jpg"}
	if !slices.Equal(rel, want) {
		t.Fatalf("got %v\nwant %v", rel, want)
	}
	if kept := WithMinImages(got, 2); len(kept) != 3 || kept[0].Person != "bob" {
		t.Fatalf("WithMinImages(2) = %v", kept)
	}
	if kept := WithMinImages(got, 4); len(kept) != 0 {
		t.Fatalf("WithMinImages(4) = %v", kept)
	}
}

func TestScanFoldersErrors(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, "a/readme.txt", "b/")
	if _, err := ScanFolders(dir); err == nil {
		t.Fatal("no error for a set without images")
	}
	if _, err := ScanFolders(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("no error for a missing folder")
	}
}
