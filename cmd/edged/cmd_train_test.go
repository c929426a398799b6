package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/edged-dev/edged/finetune"
	"github.com/edged-dev/edged/head"
	"github.com/edged-dev/edged/store"
)

// trainTestSet links (no copy) the images of the first n lfw-dev people
// with 3 images or more into a temporary folder-per-person set.
func trainTestSet(t *testing.T, n int) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs detection and the network on LFW images (skipped with -short)")
	}
	src := filepath.Join(embedTestShared, "data", "lfw-dev", "images")
	embedTestNeeds(t, src)
	people, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "set")
	var names []string
	for _, p := range people {
		files, _ := filepath.Glob(filepath.Join(src, p.Name(), "*.jpg"))
		if len(files) >= 3 {
			names = append(names, p.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names[:n] {
		files, _ := filepath.Glob(filepath.Join(src, name, "*.jpg"))
		if err := os.MkdirAll(filepath.Join(dst, name), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			abs, _ := filepath.Abs(f)
			if err := os.Symlink(abs, filepath.Join(dst, name, filepath.Base(f))); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

func trainRun(t *testing.T, args ...string) finetune.FolderReport {
	t.Helper()
	var code int
	var err error
	out := captureStdout(t, func() { code, err = runTrain(context.Background(), append(args, "--json")) })
	if err != nil || code != exitOK {
		t.Fatalf("train %v: exit %d, %v\n%s", args, code, err, out)
	}
	var rep finetune.FolderReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("train --json: %v\n%s", err, out)
	}
	return rep
}

// TestTrainCLI trains a head on a small LFW subset, checks the report, the
// exported head and the stored version, and that running the same command
// again resumes from the finished checkpoint instead of starting over.
func TestTrainCLI(t *testing.T) {
	set := trainTestSet(t, 24)
	tmp := t.TempDir()
	out, data := filepath.Join(tmp, "head.bin"), filepath.Join(tmp, "data")
	args := []string{"--images", set, "--epochs", "3", "--cache", filepath.Join(tmp, "embed.cache"),
		"--checkpoint", filepath.Join(tmp, "train.ckpt"), "--out", out, "--loss", "triplet", "--mining", "semi-hard"}
	rep := trainRun(t, append(args, "--data", data)...)
	t.Logf("%d people (%d train, %d eval), %d steps, %.2f ms/step; frozen DIR@1%% %.3f, trained %.3f",
		rep.People, rep.TrainPeople, rep.EvalPeople, rep.Steps, rep.MsPerStep, rep.Frozen.DIRAtFAR1, rep.Trained.DIRAtFAR1)
	if rep.People != 24 || rep.EvalPeople < 4 || rep.Steps == 0 || rep.Frozen == nil || rep.Trained == nil || rep.Mining != "semi-hard" {
		t.Fatalf("report %+v", rep)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := head.Unmarshal(b); err != nil {
		t.Fatalf("exported head: %v", err)
	}
	st, err := store.Open(store.Options{Dir: data, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := st.Heads()
	st.Close()
	if err != nil || len(hs) != 1 || hs[0].ID != rep.HeadVersion || hs[0].Active || string(hs[0].Weights) != string(b) {
		t.Fatalf("stored heads %+v (%v)", hs, err)
	}

	// Same command again: the checkpoint is at the end, nothing to redo.
	again := trainRun(t, args...) // without --data: no second version
	if again.ResumedAt != rep.Steps || again.Steps != rep.Steps {
		t.Fatalf("second run resumed at %d with %d steps, want %d", again.ResumedAt, again.Steps, rep.Steps)
	}
}

// TestTrainUnfreezeCLI trains the head and the backbone's last stage for
// one epoch and exports both.
func TestTrainUnfreezeCLI(t *testing.T) {
	set := trainTestSet(t, 20)
	tmp := t.TempDir()
	rep := trainRun(t, "--images", set, "--epochs", "1", "--unfreeze", "--cache", filepath.Join(tmp, "c"),
		"--checkpoint", filepath.Join(tmp, "k"), "--out", filepath.Join(tmp, "h"), "--out-backbone", filepath.Join(tmp, "b"))
	ps, err := finetune.LoadParams(filepath.Join(tmp, "b"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range ps {
		names[p.Name] = true
	}
	if !rep.Unfreeze || !names["fc"] || !names["conv256_down_out/conv1/conv/filters"] || len(ps) != 9 {
		t.Fatalf("unfrozen params %v (report %+v)", names, rep)
	}
}

func TestTrainUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--images", "x", "--loss", "hinge"},
		{"--images", "x", "--mining", "hardest"},
		{"--images", "x", "--unfreeze", "--data", "d"},
		{"--images", "x", "--out-backbone", "f"},
		{"--images", "x", "--activate"},
		{"--images", "x", "--holdout", "1"},
	} {
		if code, _ := runTrain(context.Background(), args); code != exitUsage {
			t.Errorf("%v: code %d, want usage", args, code)
		}
	}
	if code, err := runTrain(context.Background(), []string{"--images", filepath.Join(t.TempDir(), "none")}); code != exitFailure || err == nil {
		t.Errorf("missing set: code %d, err %v", code, err)
	}
}
