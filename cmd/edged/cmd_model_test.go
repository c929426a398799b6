package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/store"
)

func modelTestHead(t *testing.T, bias float32) []byte {
	t.Helper()
	h, _ := head.New(head.Dim, 1)
	ls := h.Layers()
	ls[0].B[0] = bias
	h, err := head.FromLayers(head.Dim, ls)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func modelRun(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	var code int
	var err error
	out := captureStdout(t, func() { code, err = runModel(context.Background(), args) })
	return out, code, err
}

func modelActiveID(t *testing.T, dir string) string {
	t.Helper()
	out, code, err := modelRun(t, "list", "--data", dir, "--json")
	if err != nil || code != exitOK {
		t.Fatalf("list: %d %v", code, err)
	}
	var list []modelJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	for _, m := range list {
		if m.Active {
			return m.ID
		}
	}
	return ""
}

func TestModelCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.Open(store.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-time.Hour)
	heads := []store.HeadVersion{
		{Weights: modelTestHead(t, 0.1), Created: t0, Note: "first", Metrics: map[string]float64{"dir_at_far_0.01": 0.9, "before_dir_at_far_0.01": 0.8}},
		{Weights: modelTestHead(t, 0.2), Created: t0.Add(time.Minute), Note: "second", Active: true},
		{Weights: modelTestHead(t, 0.3), Created: t0.Add(2 * time.Minute), Note: "rejected: worse"},
		{Weights: []byte("garbage"), Created: t0.Add(3 * time.Minute), Note: "corrupt"},
	}
	err = st.Update(func(tx *store.Tx) error {
		for i := range heads {
			if err := tx.SaveHead(&heads[i]); err != nil {
				return err
			}
		}
		return nil
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	a, b, rej, bad := heads[0].ID, heads[1].ID, heads[2].ID, heads[3].ID

	out, _, err := modelRun(t, "list", "--data", dir)
	if err != nil || !strings.Contains(out, "0.900 (0.800)") || !strings.Contains(out, "corrupt") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if got := modelActiveID(t, dir); got != b {
		t.Fatalf("active %q, want %q", got, b)
	}
	steps := []struct {
		args       []string
		wantActive string
		wantErr    error // nil: success
	}{
		{[]string{"activate", a}, a, nil},
		{[]string{"rollback"}, "", nil},               // nothing older than a: back to the frozen network
		{[]string{"rollback"}, "", errors.New("any")}, // nothing active
		{[]string{"activate", rej}, rej, nil},
		{[]string{"rollback"}, b, nil}, // from the rejected one to the newest older usable version
		{[]string{"activate", bad}, b, head.ErrCorrupt},
		{[]string{"activate", "01NOSUCHHEAD0000000000000"}, b, store.ErrHeadNotFound},
	}
	for _, s := range steps {
		_, code, err := modelRun(t, append(s.args, "--data", dir)...)
		switch {
		case s.wantErr == nil && err != nil:
			t.Fatalf("%v: %v", s.args, err)
		case s.wantErr != nil && (err == nil || code != exitFailure):
			t.Fatalf("%v: no error (code %d)", s.args, code)
		case s.wantErr != nil && s.wantErr.Error() != "any" && !errors.Is(err, s.wantErr):
			t.Fatalf("%v: err %v, want %v", s.args, err, s.wantErr)
		}
		if got := modelActiveID(t, dir); got != s.wantActive {
			t.Fatalf("after %v: active %q, want %q", s.args, got, s.wantActive)
		}
	}

	// import: a head file, then garbage.
	file := filepath.Join(t.TempDir(), "head.bin")
	if err := os.WriteFile(file, modelTestHead(t, 0.5), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = modelRun(t, "import", file, "--activate", "--data", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var imported modelJSON
	if err := json.Unmarshal([]byte(out), &imported); err != nil || imported.ID == "" || !imported.Active {
		t.Fatalf("import output %q (%v)", out, err)
	}
	if got := modelActiveID(t, dir); got != imported.ID {
		t.Fatalf("after import: active %q, want %q", got, imported.ID)
	}
	if err := os.WriteFile(file, []byte("EDHD not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, code, err := modelRun(t, "import", file, "--data", dir); !errors.Is(err, head.ErrCorrupt) || code != exitFailure {
		t.Fatalf("import garbage: %d %v", code, err)
	}

	// Usage errors, and no database created where there is none.
	missing := filepath.Join(t.TempDir(), "none")
	for _, args := range [][]string{{}, {"frobnicate"}, {"activate"}, {"list", "extra"}} {
		if _, code, _ := modelRun(t, args...); code != exitUsage {
			t.Errorf("%v: code %d, want usage", args, code)
		}
	}
	for _, sub := range []string{"rollback", "list"} {
		if _, _, err := modelRun(t, sub, "--data", missing); err == nil {
			t.Errorf("%s on a missing directory: no error", sub)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a database was created by a read command")
	}
}
