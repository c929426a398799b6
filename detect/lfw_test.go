package detect

import (
	"image"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// TestLFWCentreFace: on the LFW dev images (250x250, face roughly centred) a
// face box containing the image centre must be found. By default a fixed
// sample of 150 images per backend; EDGED_LFW_FULL=1 runs all 1,181 and
// logs the figures for the closing note.
func TestLFWCentreFace(t *testing.T) {
	if testing.Short() {
		t.Skip("LFW detection sweep (-short)")
	}
	dir := lfwDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "images", "*", "*.jpg"))
	sort.Strings(files)
	if len(files) == 0 {
		t.Skip("no LFW images")
	}
	full := os.Getenv("EDGED_LFW_FULL") == "1"
	if !full {
		step := max(1, len(files)/150)
		var sample []string
		for i := 0; i < len(files); i += step {
			sample = append(sample, files[i])
		}
		files = sample
	}
	for _, tc := range []struct {
		backend string
		goal    float64
	}{
		{BackendDNN, 0.995},
		{BackendHaar, 0.98},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			d := newTestDetector(t, func(o *Options) { o.Backend = tc.backend })
			var found, aligned, issues int
			var missed []string
			var elapsed time.Duration
			for _, p := range files {
				img := readImage(t, p)
				centre := image.Pt(img.Cols()/2, img.Rows()/2)
				t0 := time.Now()
				faces, err := d.Detect(img)
				elapsed += time.Since(t0)
				img.Close()
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				ok := false
				for _, f := range faces {
					if centre.In(f.Box) {
						ok = true
						if f.Aligned {
							aligned++
						}
						if f.Quality.Issue != "" {
							issues++
						}
						break
					}
				}
				if ok {
					found++
				} else {
					missed = append(missed, filepath.Base(p))
				}
			}
			share := float64(found) / float64(len(files))
			t.Logf("%s: centre face found in %d/%d = %.2f%% (aligned %d, with a quality issue %d), %.1f ms per image (detect+landmarks+align+quality)",
				tc.backend, found, len(files), 100*share, aligned, issues, float64(elapsed.Microseconds())/1000/float64(len(files)))
			if len(missed) > 0 {
				t.Logf("missed: %v", missed[:min(len(missed), 20)])
			}
			if share < tc.goal {
				t.Errorf("centre face found in %.2f%% < goal %.1f%%", 100*share, 100*tc.goal)
			}
		})
	}
}
