package main

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edged-dev/edged/eval"
)

func evalLFWTestData(t *testing.T) (pairs, images string) {
	t.Helper()
	dev := filepath.Join(embedTestShared, "data", "lfw-dev")
	embedTestNeeds(t, filepath.Join(dev, "pairs.txt"), filepath.Join(dev, "images"))
	return filepath.Join(dev, "pairs.txt"), filepath.Join(dev, "images")
}

func evalLFWRun(t *testing.T, args ...string) (eval.LFWReport, int, error) {
	t.Helper()
	var code int
	var err error
	out := captureStdout(t, func() { code, err = runEvalLFW(t.Context(), args) })
	var rep eval.LFWReport
	if code == exitOK && err == nil {
		if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
			t.Fatalf("output is not JSON: %v\n%s", jerr, out)
		}
	}
	return rep, code, err
}

// TestEvalLFWFolds runs the protocol on a small two-fold pairs file over
// real LFW images (centre crops: quick) and checks the report's shape.
func TestEvalLFWFolds(t *testing.T) {
	_, images := evalLFWTestData(t)
	dir := t.TempDir()
	pairs := filepath.Join(dir, "pairs.txt")
	os.WriteFile(pairs, []byte("2\t2\n"+
		"Abel_Pacheco\t1\t2\nAkhmed_Zakayev\t1\t3\nAbel_Pacheco\t1\tAkhmed_Zakayev\t1\nAbel_Pacheco\t2\tAkhmed_Zakayev\t2\n"+
		"Abel_Pacheco\t3\t4\nAkhmed_Zakayev\t2\t3\nAbel_Pacheco\t3\tAkhmed_Zakayev\t3\nAbel_Pacheco\t4\tAkhmed_Zakayev\t1\n"), 0o644)
	roc := filepath.Join(dir, "roc.png")
	rep, code, err := evalLFWRun(t, "--pairs", pairs, "--images", images, "--crop", "center", "--json", "--roc", roc, "--workers", "2")
	if code != exitOK || err != nil {
		t.Fatalf("exit %d, err %v", code, err)
	}
	if rep.Pairs != 8 || rep.Folds != 2 || !rep.CrossValidated || len(rep.FoldAccuracies) != 2 || rep.Images != 7 || rep.Crop != "center" {
		t.Fatalf("report %+v", rep)
	}
	if rep.Accuracy < 0.5 || rep.Accuracy > 1 || rep.AUC < 0.5 || rep.DifferentPairs != 4 || rep.Threshold <= 0 {
		t.Fatalf("implausible figures: %+v", rep)
	}
	f, err := os.Open(roc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("--roc wrote no PNG: %v", err)
	}
}

// TestEvalLFWDev is the real measurement: the dev fold's 600 pairs through
// detection, alignment and the network. Slow (about a minute on 2 cores).
func TestEvalLFWDev(t *testing.T) {
	if testing.Short() {
		t.Skip("full LFW dev-fold evaluation skipped in -short mode")
	}
	pairs, images := evalLFWTestData(t)
	rep, code, err := evalLFWRun(t, "--pairs", pairs, "--images", images, "--json")
	if code != exitOK || err != nil {
		t.Fatalf("exit %d, err %v", code, err)
	}
	t.Logf("LFW dev fold, aligned: accuracy %.2f%% at %.4f, TAR %.2f%% at FAR 1%%, %.2f%% at FAR 0.1%%, no face %d/%d, %.1f ms/image",
		100*rep.Accuracy, rep.Threshold, 100*rep.TARAtFAR1, 100*rep.TARAtFAR01, rep.NoFace, rep.Images, rep.MillisecondsPerImg)
	if rep.Pairs != 600 || rep.Folds != 1 || rep.CrossValidated {
		t.Fatalf("report %+v", rep)
	}
	if rep.Accuracy < 0.99 {
		t.Fatalf("accuracy %.4f < 0.99 with alignment", rep.Accuracy)
	}
}

func TestEvalLFWBadInput(t *testing.T) {
	pairsFile, images := evalLFWTestData(t)
	dir := t.TempDir()
	badPairs := filepath.Join(dir, "bad.txt")
	os.WriteFile(badPairs, []byte("1\t1\nA 1 B 2\n"), 0o644)
	missingImg := filepath.Join(dir, "missing.txt")
	os.WriteFile(missingImg, []byte("1\t1\nAbel_Pacheco\t1\t9\nAbel_Pacheco\t1\tAkhmed_Zakayev\t1\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no pairs", []string{"--json"}, exitUsage, "--pairs is required"},
		{"bad crop", []string{"--pairs", pairsFile, "--crop", "square"}, exitUsage, "square"},
		{"extra arg", []string{"--pairs", pairsFile, "x"}, exitUsage, "unexpected"},
		{"pairs missing", []string{"--pairs", filepath.Join(dir, "none.txt")}, exitFailure, "none.txt"},
		{"pairs malformed", []string{"--pairs", badPairs, "--images", images}, exitFailure, "matched pair"},
		{"images missing", []string{"--pairs", pairsFile, "--images", filepath.Join(dir, "nope")}, exitFailure, "not a directory"},
		{"image missing", []string{"--pairs", missingImg, "--images", images, "--crop", "center"}, exitFailure, "Abel_Pacheco_0009.jpg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, code, err := evalLFWRun(t, tt.args...)
			if code != tt.code || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("exit %d, err %v; want exit %d and %q", code, err, tt.code, tt.want)
			}
		})
	}
}
