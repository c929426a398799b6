package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/edged-dev/edged/store"
)

// storeCLITestLFW is ../shared/data/lfw-dev/images next to the checkout.
var storeCLITestLFW = filepath.Join("..", "..", "..", "shared", "data", "lfw-dev", "images")

// storeCLIRun runs a command function and returns its exit code, error and
// standard output.
func storeCLIRun(t *testing.T, fn func() (int, error)) (int, error, string) {
	t.Helper()
	var code int
	var err error
	out := captureStdout(t, func() { code, err = fn() })
	return code, err, out
}

// storeCLISeed creates a store with two people, directly through the store.
func storeCLISeed(t *testing.T, dir string, key []byte) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, name := range []string{"Alice", "Bob"} {
		err := st.Update(func(tx *store.Tx) error {
			p := store.Person{Name: name}
			if err := tx.PutPerson(&p); err != nil {
				return err
			}
			emb := make([]float32, 128)
			emb[len(name)] = 1
			return tx.AddSample(&store.Sample{PersonID: p.ID, Embedding: emb, Quality: 0.8, Source: store.SourceFile, Ref: name + ".jpg"}, nil)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestStoreCLIPeopleBackupRestore(t *testing.T) {
	t.Setenv(store.KeyEnv, "")
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	storeCLISeed(t, data, nil)

	code, err, out := storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), []string{"list", "--data", data, "--json"}) })
	var list []store.PersonSummary
	if code != exitOK || err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[0].Name != "Alice" || list[0].Samples != 1 {
		t.Fatalf("people list: %d %v %s", code, err, out)
	}
	// Flags after the positional arguments work too.
	code, err, out = storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), []string{"show", "alice", "--data", data}) })
	if code != exitOK || err != nil || !strings.Contains(out, "Alice") || !strings.Contains(out, "Alice.jpg") {
		t.Fatalf("people show: %d %v %s", code, err, out)
	}
	if code, err, _ := storeCLIRun(t, func() (int, error) {
		return runPeople(t.Context(), []string{"rename", "Bob", "Robert", "--data", data})
	}); code != exitOK || err != nil {
		t.Fatalf("rename: %d %v", code, err)
	}
	if code, err, _ := storeCLIRun(t, func() (int, error) {
		return runPeople(t.Context(), []string{"rename", "Robert", "alice", "--data", data})
	}); code != exitFailure || !errors.Is(err, store.ErrNameTaken) {
		t.Fatalf("rename onto a taken name: %d %v", code, err)
	}
	backup := filepath.Join(tmp, "edged.bak")
	if code, err, out := storeCLIRun(t, func() (int, error) { return runBackup(t.Context(), []string{backup, "--data", data}) }); code != exitOK || err != nil || !strings.Contains(out, "plain") {
		t.Fatalf("backup: %d %v %s", code, err, out)
	}
	code, err, out = storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), []string{"delete", "Robert", "--data", data}) })
	if code != exitOK || err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %d %v %s", code, err, out)
	}
	if code, err, _ := storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), []string{"show", "Robert", "--data", data}) }); code != exitFailure || !errors.Is(err, store.ErrPersonNotFound) {
		t.Fatalf("show deleted: %d %v", code, err)
	}
	// Restore into a new directory: Robert is back.
	restored := filepath.Join(tmp, "restored")
	if code, err, _ := storeCLIRun(t, func() (int, error) { return runRestore(t.Context(), []string{backup, "--data", restored}) }); code != exitOK || err != nil {
		t.Fatalf("restore: %d %v", code, err)
	}
	code, _, out = storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), []string{"list", "--data", restored, "--json"}) })
	list = nil
	if code != exitOK || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[1].Name != "Robert" {
		t.Fatalf("restored list: %s", out)
	}
	// Never over existing data.
	if code, err, _ := storeCLIRun(t, func() (int, error) { return runRestore(t.Context(), []string{backup, "--data", data}) }); code != exitFailure || !errors.Is(err, store.ErrRestoreTarget) {
		t.Fatalf("restore over data: %d %v", code, err)
	}
	// While another process (here: this one) holds the store, commands say so.
	st, err := store.Open(store.Options{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	code, err, _ = storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), []string{"list", "--data", data}) })
	st.Close()
	if code != exitStartup || !errors.Is(err, store.ErrLocked) {
		t.Fatalf("locked store: %d %v", code, err)
	}
	// Listing where there is no database creates none.
	none := filepath.Join(tmp, "none")
	if code, err, _ := storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), []string{"list", "--data", none}) }); code != exitFailure || err == nil {
		t.Fatalf("list without database: %d %v", code, err)
	}
	if _, err := os.Stat(none); err == nil {
		t.Fatal("people list created a database")
	}
	// Usage errors.
	for _, args := range [][]string{{}, {"frobnicate"}, {"show"}, {"rename", "a"}} {
		if code, err, _ := storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), args) }); code != exitUsage || !errors.Is(err, errUsage) {
			t.Errorf("people %v: %d %v", args, code, err)
		}
	}
}

func TestStoreCLIEncryptionKey(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	keyFile := filepath.Join(tmp, "key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, _ := store.LoadKey(keyFile, "")
	storeCLISeed(t, data, key)
	t.Setenv(store.KeyEnv, "")
	if code, err, _ := storeCLIRun(t, func() (int, error) {
		return runPeople(t.Context(), []string{"list", "--data", data, "--key-file", keyFile})
	}); code != exitOK || err != nil {
		t.Fatalf("with key file: %d %v", code, err)
	}
	if code, err, _ := storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), []string{"list", "--data", data}) }); code != exitStartup || !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("without key: %d %v", code, err)
	}
	t.Setenv(store.KeyEnv, strings.Repeat("cd", 32))
	if code, err, _ := storeCLIRun(t, func() (int, error) {
		return runPeople(t.Context(), []string{"list", "--data", data, "--key-file", keyFile})
	}); code != exitStartup || !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("wrong key in the environment (it overrides the file): %d %v", code, err)
	}
	// An encrypted backup needs the key to restore.
	t.Setenv(store.KeyEnv, "")
	backup := filepath.Join(tmp, "b")
	if code, err, out := storeCLIRun(t, func() (int, error) {
		return runBackup(t.Context(), []string{"--data", data, "--key-file", keyFile, backup})
	}); code != exitOK || !strings.Contains(out, "encrypted") {
		t.Fatalf("backup: %d %v %s", code, err, out)
	}
	if code, err, _ := storeCLIRun(t, func() (int, error) {
		return runRestore(t.Context(), []string{backup, "--data", filepath.Join(tmp, "r")})
	}); code != exitFailure || !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("restore without key: %d %v", code, err)
	}
}

func storeCLINeedsLFW(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(defaultModelDir(), "face_recognition_model.bin")); err != nil {
		t.Skipf("models not installed (make setup): %v", err)
	}
	if _, err := os.Stat(storeCLITestLFW); err != nil {
		t.Skipf("LFW dev images not available (../shared/data/lfw-dev): %v", err)
	}
}

func storeCLIImages(t *testing.T, person string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(storeCLITestLFW, person, "*.jpg"))
	if err != nil || len(files) == 0 {
		t.Skipf("no images of %s", person)
	}
	sort.Strings(files)
	return files
}

func TestEnrollCommandWithRealFaces(t *testing.T) {
	storeCLINeedsLFW(t)
	t.Setenv(store.KeyEnv, "")
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	blank := filepath.Join(tmp, "blank.png")
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 320, 240))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blank, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	imgs := storeCLIImages(t, "Gordon_Brown")[:3]
	args := append([]string{"--name", "Gordon Brown", "--data", data, "--json"}, imgs...)
	args = append(args, blank)
	code, err, out := storeCLIRun(t, func() (int, error) { return runEnroll(t.Context(), args) })
	var res struct {
		PersonID string `json:"person_id"`
		Created  bool   `json:"created"`
		Accepted int    `json:"accepted"`
		Refused  int    `json:"refused"`
		Images   []struct {
			Name, Code string
			Accepted   bool
		} `json:"images"`
	}
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
		t.Fatalf("not JSON: %s", out)
	}
	// Three faces in, the blank picture refused with its reason, and the
	// exit code says something was refused.
	if code != exitFailure || err == nil || !res.Created || res.Accepted != 3 || res.Refused != 1 || res.Images[3].Code != "no_face" {
		t.Fatalf("enroll: %d %v %s", code, err, out)
	}
	// Only refused images: nothing stored, the code in the JSON.
	code, _, out = storeCLIRun(t, func() (int, error) {
		return runEnroll(t.Context(), []string{"--name", "Nobody", "--data", data, "--json", blank})
	})
	if code != exitFailure || !strings.Contains(out, `"code":"no_face"`) {
		t.Fatalf("blank only: %d %s", code, out)
	}
	code, _, out = storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), []string{"list", "--data", data, "--json"}) })
	var list []store.PersonSummary
	if code != exitOK || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Samples != 3 || list[0].Clusters < 1 {
		t.Fatalf("after enroll: %s", out)
	}
	if code, err, _ := storeCLIRun(t, func() (int, error) { return runEnroll(t.Context(), []string{"--data", data, imgs[0]}) }); code != exitUsage || err == nil {
		t.Fatalf("no name: %d %v", code, err)
	}
}

func TestEvalFewshotSmallSet(t *testing.T) {
	storeCLINeedsLFW(t)
	if testing.Short() {
		t.Skip("-short: embeds ~40 images")
	}
	// A folder-per-person set of links into lfw-dev: 3 people with 7
	// images, 6 strangers with one.
	set := t.TempDir()
	link := func(person string, files []string) {
		if err := os.MkdirAll(filepath.Join(set, person), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			abs, _ := filepath.Abs(f)
			if err := os.Symlink(abs, filepath.Join(set, person, filepath.Base(f))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range []string{"John_McCain", "John_Manley", "Ann_Veneman"} {
		link(p, storeCLIImages(t, p)[:7])
	}
	entries, _ := os.ReadDir(storeCLITestLFW)
	strangers := 0
	for _, e := range entries {
		if strangers == 6 {
			break
		}
		if files := storeCLIImages(t, e.Name()); len(files) == 1 {
			link(e.Name(), files)
			strangers++
		}
	}
	code, err, out := storeCLIRun(t, func() (int, error) {
		// Enrollment only (the frozen figures' contract); the device
		// experience flow (--experience, default 0.5) has its own tests in eval.
		return runEvalFewshot(t.Context(), []string{"--images", set, "--shots", "1,2", "--min-images", "7", "--experience", "0", "--json"})
	})
	if code != exitOK || err != nil {
		t.Fatalf("eval: %d %v", code, err)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %s", out)
	}
	if rep["people"] != 3.0 || rep["strangers"] != 6.0 {
		t.Fatalf("report: %s", out)
	}
	results := rep["results"].([]any)
	if len(results) != 2 {
		t.Fatalf("results: %s", out)
	}
	keys := []string{"shots", "probes", "unknown_probes", "top1", "dir_at_far_0.01", "dir_at_far_0.001", "dir_at_threshold", "false_accept_rate", "threshold"}
	for i, r := range results {
		m := r.(map[string]any)
		if len(m) != len(keys) {
			t.Errorf("result %d has keys %v", i, m)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("result %d lacks %q", i, k)
			}
		}
		if m["probes"] != float64(3*(7-(i+1))) || m["unknown_probes"] != 6.0 {
			t.Errorf("result %d counts: %v", i, m)
		}
		for _, k := range []string{"top1", "dir_at_far_0.01", "dir_at_far_0.001", "dir_at_threshold", "false_accept_rate"} {
			if v := m[k].(float64); v < 0 || v > 1 {
				t.Errorf("result %d %s = %v", i, k, v)
			}
		}
		// Three distinct, well photographed people: the nearest person is
		// right for most probes.
		if m["top1"].(float64) < 0.8 {
			t.Errorf("result %d top-1 %v", i, m["top1"])
		}
	}
	for _, bad := range [][]string{{}, {"--images", set, "--shots", "0"}, {"--images", set, "--shots", "x"}, {"--images", set, "--min-images", "0"}} {
		if code, _, _ := storeCLIRun(t, func() (int, error) { return runEvalFewshot(t.Context(), bad) }); code != exitUsage {
			t.Errorf("%v: exit %d", bad, code)
		}
	}
	if code, err, _ := storeCLIRun(t, func() (int, error) {
		return runEvalFewshot(t.Context(), []string{"--images", set, "--min-images", "100"})
	}); code != exitFailure || err == nil {
		t.Errorf("nobody with 100 images: %d %v", code, err)
	}
}
