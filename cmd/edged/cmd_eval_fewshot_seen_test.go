package main

import "testing"

func TestFewshotSeenStrangersUsage(t *testing.T) {
	dir := t.TempDir()
	for _, bad := range [][]string{
		{"--images", dir, "--finetune", "--seen-strangers", "1"},
		{"--images", dir, "--finetune", "--seen-strangers", "-0.1"},
		{"--images", dir, "--seen-strangers", "0.5"}, // needs --finetune
	} {
		if code, err := runEvalFewshot(t.Context(), bad); code != exitUsage {
			t.Errorf("%v: exit %d (%v), want usage", bad, code, err)
		}
	}
}
