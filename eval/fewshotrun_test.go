package eval

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/gallery"
)

func TestFewshotSplitSeenStrangers(t *testing.T) {
	var all []string
	for i := 0; i < 11; i++ {
		all = append(all, fmt.Sprintf("p%02d", i))
	}
	tests := []struct {
		frac     float64
		wantSeen int
	}{{0, 0}, {0.5, 6}, {0.25, 3}, {0.01, 0}}
	for _, tc := range tests {
		seen, probes := splitSeenStrangers(all, tc.frac)
		if len(seen) != tc.wantSeen || len(seen)+len(probes) != len(all) {
			t.Fatalf("frac %g: %d seen, %d probes; want %d seen of %d", tc.frac, len(seen), len(probes), tc.wantSeen, len(all))
		}
		for _, p := range seen {
			if slices.Contains(probes, p) {
				t.Fatalf("frac %g: %s is seen and a probe", tc.frac, p)
			}
		}
		again, _ := splitSeenStrangers(all, tc.frac)
		if !slices.Equal(seen, again) {
			t.Fatalf("frac %g: split not reproducible: %v vs %v", tc.frac, seen, again)
		}
	}
}

// The split tests run the harness on a synthetic folder tree with fake
// detection and embedding: an image is one colour; its red value is the
// identity of the one face in it (0: no face), green makes each image's
// embedding a little different, blue 1 marks a face too poor to enroll.

type fakeFinder struct{}

func (fakeFinder) DetectBytes(data []byte) ([]face.Face, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	r, g, b, _ := img.At(0, 0).RGBA()
	if r == 0 {
		return nil, nil
	}
	q := float32(0.9)
	if b>>8 == 1 {
		q = 0.01 // below enroll's MinQuality
	}
	pix := make([]byte, face.ChipSize*face.ChipSize*3)
	pix[0], pix[1] = byte(r>>8), byte(g>>8)
	return []face.Face{{Box: image.Rect(8, 8, 56, 56), Score: 0.99, Chip: face.Chip{Pix: pix}, Quality: face.Quality{Score: q}}}, nil
}

type fakeEmbedder struct{}

func (fakeEmbedder) Embed(chips []face.Chip) ([]face.Embedding, error) {
	out := make([]face.Embedding, len(chips))
	for i, c := range chips {
		v := make(face.Embedding, 128)
		v[int(c.Pix[0])%128] = 1
		v[(int(c.Pix[0])+7)%128] = float32(c.Pix[1]) / 2550
		out[i] = v
	}
	return out, nil
}

// fewshotTree writes the set: alice (7 images: the first has no face, the
// second a poor one), bob (6 good ones), carol (5 without a face: she can
// never be enrolled), and the strangers dave (2), erin (1) and frank (3).
func fewshotTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(person, name string, r, g, b uint8) {
		img := image.NewRGBA(image.Rect(0, 0, 64, 64))
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = r, g, b, 255
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, person), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, person, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("alice", "a1.png", 0, 1, 0)
	write("alice", "a2.png", 1, 2, 1)
	for i := 3; i <= 7; i++ {
		write("alice", fmt.Sprintf("a%d.png", i), 1, uint8(i), 0)
	}
	for i := 1; i <= 6; i++ {
		write("bob", fmt.Sprintf("b%d.png", i), 2, uint8(i), 0)
	}
	for i := 1; i <= 5; i++ {
		write("carol", fmt.Sprintf("c%d.png", i), 0, uint8(i), 0)
	}
	write("dave", "d1.png", 4, 1, 0)
	write("dave", "d2.png", 4, 2, 0)
	write("erin", "e1.png", 5, 1, 0)
	for i := 1; i <= 3; i++ {
		write("frank", fmt.Sprintf("f%d.png", i), 6, uint8(i), 0)
	}
	return dir
}

func fewshotTestOptions() FewShotOptions {
	return FewShotOptions{Shots: []int{1, 2, 5}, MinImages: 5, SeenStrangers: 1.0 / 3,
		Backbone: FewShotBackbone{ID: "test", Space: gallery.DlibSpace, Dim: 128}, Workers: 2}
}

func base(paths ...string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	slices.Sort(out)
	return out
}

func probePaths(ps []fewshotProbe) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Path)
	}
	return base(out...)
}

// TestFewShotSplit: enrolled images are never probes, every other image of
// a person is one (refused images included), and strangers are kept apart:
// the seen ones are never probes, the others only stranger probes.
func TestFewShotSplit(t *testing.T) {
	dir := fewshotTree(t)
	f, err := NewFewShot(dir, fewshotTestOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.people, []string{"alice", "bob", "carol"}) || len(f.strangers) != 2 || len(f.seen) != 1 {
		t.Fatalf("people %v, strangers %v, seen %v", f.people, f.strangers, f.seen)
	}
	if slices.Contains(f.strangers, f.seen[0]) {
		t.Fatalf("%s is seen and a stranger probe", f.seen[0])
	}
	cache := newFaceCache(fakeFinder{}, fakeEmbedder{})
	if err := embedFewshotSet(t.Context(), f.set, cache, 2, nil, nil); err != nil {
		t.Fatal(err)
	}
	usable := map[string]int{"alice": 5, "bob": 6, "carol": 0}
	for _, k := range []int{1, 2, 5} {
		run, err := enrollFewshot(t.Context(), f.set, f.people, f.strangers, f.seen, k, 0, f.opts.Backbone, cache, 0, f.opts.Logger)
		if err != nil {
			t.Fatal(err)
		}
		enrolled := base(run.enrolled...)
		known := probePaths(run.Known)
		for _, e := range enrolled {
			if slices.Contains(known, e) {
				t.Errorf("k=%d: enrolled image %s is a probe", k, e)
			}
		}
		for _, p := range f.people {
			var all, got []string
			for _, im := range f.set.images[p] {
				all = append(all, filepath.Base(im.Path))
			}
			n := 0
			for _, e := range run.enrolled {
				if filepath.Base(filepath.Dir(e)) == p {
					n++
				}
			}
			if n != min(k, usable[p]) {
				t.Errorf("k=%d: %s has %d images enrolled, want %d", k, p, n, min(k, usable[p]))
			}
			for _, pr := range run.Known {
				if pr.Truth == p {
					got = append(got, filepath.Base(pr.Path))
				}
			}
			// Enrolled + probes: every image once.
			got = append(got, enrolled...)
			if part := slices.DeleteFunc(base(got...), func(s string) bool { return !slices.Contains(all, s) }); !slices.Equal(part, base(all...)) {
				t.Errorf("k=%d: %s: enrolled and probes %v, images %v", k, p, part, base(all...))
			}
		}
		for _, refused := range []string{"a1.png", "a2.png", "c1.png", "c5.png"} {
			if slices.Contains(enrolled, refused) || !slices.Contains(known, refused) {
				t.Errorf("k=%d: refused image %s: enrolled %v, probes %v", k, refused, enrolled, known)
			}
		}
		if _, ok := run.IDs["carol"]; ok {
			t.Errorf("k=%d: carol enrolled without a face", k)
		}
		if run.Refused < 2+5 {
			t.Errorf("k=%d: %d images refused, want at least 7", k, run.Refused)
		}
		// Strangers: the seen one's images only in Seen, the others' only
		// as stranger probes; no stranger is a known probe.
		var seen, strangers []string
		for _, im := range run.Seen {
			seen = append(seen, filepath.Base(im.Path))
		}
		for _, p := range f.strangers {
			for _, im := range f.set.images[p] {
				strangers = append(strangers, filepath.Base(im.Path))
			}
		}
		if unknown := probePaths(run.Unknown); !slices.Equal(unknown, base(strangers...)) {
			t.Errorf("k=%d: stranger probes %v, want %v", k, unknown, base(strangers...))
		}
		for _, s := range append(seen, strangers...) {
			if slices.Contains(known, s) {
				t.Errorf("k=%d: stranger image %s is a known probe", k, s)
			}
		}
		for _, s := range seen {
			if slices.Contains(strangers, s) {
				t.Errorf("k=%d: seen stranger image %s is a probe", k, s)
			}
		}
		if len(seen) != len(f.set.images[f.seen[0]]) {
			t.Errorf("k=%d: seen %v, want the images of %s", k, seen, f.seen[0])
		}
		res, _, err := run.Score(run.Gallery)
		if err != nil {
			t.Fatal(err)
		}
		if res.Probes != len(run.Known) || res.UnknownProbes != len(run.Unknown) || res.FalseAccept != 0 {
			t.Errorf("k=%d: %+v", k, res)
		}
		run.Close()
	}
}

// TestFewShotRun runs the whole harness with the fakes and a fine-tune step
// that scores again: one entry per setting, the counts of the split.
func TestFewShotRun(t *testing.T) {
	o := fewshotTestOptions()
	calls := 0
	o.Finetune = func(ctx context.Context, run *FewShotRun) (FewShotResult, string, error) {
		calls++
		r, _, err := run.Score(run.Gallery)
		return r, "rejected: test", err
	}
	progress := 0
	o.Progress = func(done, total int) {
		if done != progress+1 || total != 24 {
			t.Errorf("progress %d/%d after %d", done, total, progress)
		}
		progress = done
	}
	f, err := NewFewShot(fewshotTree(t), o)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.Run(t.Context(), fakeFinder{}, fakeEmbedder{})
	if err != nil {
		t.Fatal(err)
	}
	r := out.Report
	if r.Backbone != "test" || r.People != 3 || r.Strangers != 2 || r.SeenStrangers != 1 || len(r.Results) != 3 || calls != 3 || progress != 24 || out.Images != 24 {
		t.Fatalf("report %+v, %d fine-tunes, progress %d", r, calls, progress)
	}
	// 18 images of people: k=1 enrolls 1+1 (carol none), k=2 2+2, k=5 5+5.
	for i, want := range []int{16, 14, 8} {
		e := r.Results[i]
		if e.Probes != want || e.Finetuned == nil || e.Finetuned.Probes != want || e.Guard != "rejected: test" {
			t.Errorf("setting %d: %+v (finetuned %+v), want %d probes", i, e.FewShotResult, e.Finetuned, want)
		}
	}
	var text bytes.Buffer
	f.WriteText(&text, out, time.Second)
	for _, s := range []string{"3 people enrolled (>= 5 images), 2 strangers; 24 images", "+finetune", "rejected: test", "enrollment images refused"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text report without %q:\n%s", s, text.String())
		}
	}
}

func TestNewFewShotNobodyEnrolled(t *testing.T) {
	o := fewshotTestOptions()
	o.MinImages = 8
	if _, err := NewFewShot(fewshotTree(t), o); err == nil || !strings.Contains(err.Error(), "nobody in") {
		t.Fatalf("err = %v", err)
	}
}
