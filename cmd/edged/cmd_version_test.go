package main

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
)

// captureStdout runs fn with os.Stdout redirected and returns what it printed.
func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	fn()
	os.Stdout = old
	w.Close()
	return <-done
}

func TestVersionJSON(t *testing.T) {
	out := captureStdout(t, func() {
		if code, err := runVersion(t.Context(), []string{"--json"}); code != exitOK || err != nil {
			t.Fatalf("exit %d, err %v", code, err)
		}
	})
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %q: %v", out, err)
	}
	if v["tensorflow"] != "2.18.1" || v["opencv"] != "4.6.0" || !strings.HasPrefix(v["edged"], "v") || v["backbone"] != "mobilefacenet" {
		t.Errorf("versions = %v", v)
	}
	plain := captureStdout(t, func() { runVersion(t.Context(), nil) })
	want := "edged " + v["edged"] + " tensorflow 2.18.1 opencv 4.6.0 backbone mobilefacenet\n"
	if plain != want {
		t.Errorf("plain output %q, want %q", plain, want)
	}
}
